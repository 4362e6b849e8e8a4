#!/usr/bin/env bash
# Factories side by side on this machine's Slurm (make slurm-up): the time from the
# first submit to the first task running, and the wall time of 1,000 `true`
# commands on at most 2 workers of 1 core, for
#   - vine's Slurm factory (vine_factory_create(m, "slurm")),
#   - vine's local factory (worker processes on this machine),
#   - Work Queue's own factory (work_queue_factory -T slurm, Debian's
#     coop-computing-tools, and its catalog server) for a Work Queue manager.
# Setups alternate over PASSES passes (default 3); the medians are reported. Between
# runs the queue is left to empty, so every run starts on an idle node.
set -euo pipefail
cd "$(dirname "$0")/../.."
passes=${PASSES:-3}
n=${TASKS:-1000}
bin=benches/bin
mkdir -p "$bin"
if ! sinfo --noheader >/dev/null 2>&1; then
    echo "benches/factory: no working Slurm here (make slurm-up): skipped"
    exit 0
fi
cargo build --release -q
gcc -O2 -Wall -Wextra -Werror -Iinclude benches/factory/vine_factory.c target/release/libvine.a \
    -lpthread -ldl -lm -o "$bin/vine_factory"
wq=0
if [ -f /usr/include/cctools/work_queue.h ] && command -v work_queue_factory >/dev/null &&
    command -v catalog_server >/dev/null; then
    gcc -O2 -Wall -Wextra -I/usr/include/cctools benches/factory/wq_factory.c \
        -lwork_queue -ldttools -lm -lz -lcrypt -o "$bin/wq_factory"
    wq=1
else
    echo "benches/factory: no coop-computing-tools(-dev): Work Queue's factory not measured"
fi
export VINE_WORKER_PATH=$PWD/target/release/vine_worker
scratch=$(mktemp -d)
catalog_pid=
cleanup() {
    [ -n "$catalog_pid" ] && kill "$catalog_pid" 2>/dev/null || true
    pkill -f "work_queue_factory -T slurm -M vine-bench-$$" 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT

settle() { # until no job of ours is in the queue
    for _ in $(seq 600); do
        [ -z "$(squeue --noheader -u "$(id -un)" 2>/dev/null)" ] && return 0
        sleep 0.1
    done
    echo "benches/factory: jobs left in the queue:" >&2; squeue >&2; return 1
}

if [ $wq = 1 ]; then
    port=$((20000 + $$ % 20000))
    catalog_server -p "$port" > "$scratch/catalog.log" 2>&1 &
    catalog_pid=$!
fi

declare -A first total
for pass in $(seq "$passes"); do
    for setup in vine-slurm vine-local wq-slurm; do
        settle
        case $setup in
        vine-slurm) out=$(cd "$scratch" && "$OLDPWD/$bin/vine_factory" slurm "$n" 2 2>/dev/null) ;;
        vine-local) out=$(cd "$scratch" && "$OLDPWD/$bin/vine_factory" local "$n" 2 2>/dev/null) ;;
        wq-slurm)
            [ $wq = 1 ] || continue
            project=vine-bench-$$-$pass
            (cd "$scratch" && exec work_queue_factory -T slurm -M "$project" \
                --catalog="127.0.0.1:$port" -w 0 -W 2 --cores=1 -t 30 -S "$scratch/wq-$pass" \
                > "$scratch/wq-factory-$pass.log" 2>&1) &
            fpid=$!
            out=$(cd "$scratch" && "$OLDPWD/$bin/wq_factory" "$project" "$n" 127.0.0.1 "$port" 2>/dev/null)
            kill -TERM "$fpid" 2>/dev/null || true
            wait "$fpid" 2>/dev/null || true
            ;;
        esac
        echo "pass $pass $setup: $out"
        first[$setup]+="$(echo "$out" | awk '{ print $2 }') "
        total[$setup]+="$(echo "$out" | awk '{ print $4 }') "
    done
done
settle

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo
echo "| setup (single-node Slurm, 2 CPUs; max 2 workers x 1 core) | first submit -> first task running (s) | $n x true (s) | tasks/s |"
echo "|---|---|---|---|"
for setup in vine-slurm vine-local wq-slurm; do
    [ -n "${first[$setup]:-}" ] || continue
    f=$(echo "${first[$setup]}" | median)
    t=$(echo "${total[$setup]}" | median)
    case $setup in
    vine-slurm) name="vine, Slurm factory" ;;
    vine-local) name="vine, local factory" ;;
    wq-slurm) name="Work Queue 9.9, work_queue_factory -T slurm" ;;
    esac
    printf '| %s | %s | %s | %.0f |\n' "$name" "$f" "$t" "$(echo "$n / $t" | bc -l)"
done
