#!/usr/bin/env bash
# Builds nothing: runs the TaskVine-style programs in bin/ (see Makefile) each on
# local threads and on two remote vine_workers, against an HTTP server on
# 127.0.0.1 for URL inputs. Judges each run by the program's own checks of what
# it produced (it exits non-zero on any wrong output), by its exit code, and for
# cached URLs by how many times the server was asked for them. Prints a table.
#   run.sh              every program, local and remote
#   run.sh --valgrind   one program on local threads under valgrind, where any
#                       leak, definite or possible, is an error
# TV_ONLY="name ..." runs only those programs.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
worker=$root/target/release/vine_worker
work=$(mktemp -d /tmp/vine-taskvine.XXXXXX)
server=

cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null
	jobs -p | xargs -r kill 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# What the web server holds.
served=$work/served
mkdir -p "$served/blast/ncbi-blast-2.13.0+/bin" "$served/landmark" "$served/package/bin"
cat > "$served/blast/ncbi-blast-2.13.0+/bin/blastp" <<'SH'
#!/bin/sh
# blastp -db NAME -query FILE: counts the queries and the database's records.
n=$(grep -c '^>' "$4")
lines=$(wc -l < "$BLASTDB/$2.db")
echo "queries=$n db=$((lines + 0)) first=$(sed -n 2p "$4")"
SH
chmod 755 "$served/blast/ncbi-blast-2.13.0+/bin/blastp"
seq 1 100 | sed 's/^/record /' > "$served/landmark/landmark.db"
tar czf "$served/blast.tar.gz" -C "$served/blast" .
tar czf "$served/landmark.tar.gz" -C "$served/landmark" .
for i in 0 1 2 3 4; do
	yes word | head -n $((100 * (i + 1))) | tr '\n' ' ' > "$served/book$i.txt"
done
head -c 4096 /dev/urandom > "$served/A-Cat.jpg"
printf '#!/bin/sh\necho "packed python ran: $(cat "$1")"\n' > "$served/package/bin/python"
chmod 755 "$served/package/bin/python"
tar czf "$served/package.tar.gz" -C "$served/package" .

python3 "$here/serve.py" "$served" "$work/http-port" "$work/requests" &
server=$!
for _ in $(seq 1 300); do [ -s "$work/http-port" ] && break; sleep 0.1; done
[ -s "$work/http-port" ] || { echo "the HTTP server did not start"; exit 1; }
touch "$work/requests"
export TV_URL="http://127.0.0.1:$(cat "$work/http-port")"
export TV_CAT_SIZE=4096

failed=0
table=()

# requests PATH: how many times the server was asked for PATH so far.
requests() { grep -cx "$1" "$work/requests"; }

# run NAME MODE CORES INPUT PROGRAM [ARGS...]: one run; MODE local or remote.
run() {
	local name=$1 mode=$2 cores=$3 input=$4
	shift 4
	case " ${TV_ONLY:-$name} " in *" $name "*) ;; *) return ;; esac
	local dir=$work/$name-$mode
	mkdir -p "$dir"
	local rc pid port books_before workers=()
	books_before=$(requests /book0.txt)
	if [ "$mode" = local ]; then
		(cd "$dir" && printf "$input" | TV_PORT=0 TV_MARKS=$dir VINE_LOCAL_CORES=$cores \
			timeout 600 "$@" > out 2>&1)
		rc=$?
	else
		(cd "$dir" && printf "$input" | TV_PORT=0 TV_MARKS=$dir VINE_LOCAL_CORES=0 \
			exec timeout 600 "$@" > out 2>&1) &
		pid=$!
		port=
		for _ in $(seq 1 600); do
			port=$(sed -n 's/^listening on port \([0-9]*\).*/\1/p' "$dir/out" 2>/dev/null)
			[ -n "$port" ] && break
			kill -0 $pid 2>/dev/null || break
			sleep 0.1
		done
		if [ -n "$port" ]; then
			for w in 1 2; do
				timeout 600 "$worker" "127.0.0.1:$port" --cores "$cores" --timeout 60 \
					> "$dir/worker$w.log" 2>&1 &
				workers+=($!)
			done
		fi
		wait $pid
		rc=$?
		# The workers leave when the manager is deleted (or time out).
		[ ${#workers[@]} -gt 0 ] && wait "${workers[@]}"
	fi
	local verdict=ok
	if [ $rc -ne 0 ] || ! grep -q "^RESULT .*: OK" "$dir/out"; then
		verdict="FAILED (exit $rc)"
	fi
	if [ "$name" = gutenberg ]; then
		# Cached FOREVER: one download per worker at most.
		local most=1 got
		[ "$mode" = remote ] && most=2
		got=$(( $(requests /book0.txt) - books_before ))
		if [ "$got" -gt "$most" ]; then
			verdict="FAILED (book0.txt downloaded $got times)"
		fi
	fi
	if [ "$verdict" != ok ]; then
		failed=1
		echo "---- $name on $mode workers: $verdict"
		tail -n 30 "$dir/out"
		for l in "$dir"/worker*.log; do [ -f "$l" ] && { echo "-- $l"; tail -n 10 "$l"; }; done
	fi
	table+=("$(printf '%-14s %-7s %s' "$name" "$mode" "$verdict")")
}

bin=$here/bin
if [ "${1:-}" = --valgrind ]; then
	dir=$work/valgrind
	mkdir -p "$dir"
	(cd "$dir" && TV_PORT=0 VINE_LOCAL_CORES=2 valgrind -q --error-exitcode=1 --leak-check=full \
		--show-leak-kinds=definite,possible --errors-for-leak-kinds=definite,possible \
		"$bin/gutenberg" > out 2> valgrind.log)
	rc=$?
	if [ $rc -ne 0 ] || ! grep -q "^RESULT .*: OK" "$dir/out"; then
		echo "gutenberg under valgrind: exit $rc"
		tail -n 20 "$dir/out"
		cat "$dir/valgrind.log"
		exit 1
	fi
	echo "gutenberg under valgrind: no error, no leak (definite or possible)"
	exit 0
fi

bench_input='submit 1 0 1 6 small\nsubmit 2 0 2 3 big\nwait\nsubmit 1 0 1 2\nquit\n'
for mode in local remote; do
	run blast "$mode" 2 '' "$bin/blast"
	run gutenberg "$mode" 2 '' "$bin/gutenberg"
	run mosaic "$mode" 2 '' "$bin/mosaic"
	run watch "$mode" 2 '' "$bin/watch"
	run poncho "$mode" 2 '' "$bin/poncho"
	run benchmark-1c "$mode" 1 "$bench_input" "$bin/benchmark" -p 0
	run benchmark-mc "$mode" 2 "$bench_input" "$bin/benchmark" -m -p 0 -N bench
done

printf '%-14s %-7s %s\n' program workers result
printf '%s\n' "${table[@]}"
exit $failed
