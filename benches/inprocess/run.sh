#!/usr/bin/env bash
# vine's in-process path against OpenMP tasks (libgomp), oneTBB's task_group and
# rayon's scope, each with 2 threads (vine: VINE_LOCAL_CORES=2, local function
# tasks, each result taken back with vine_wait and deleted). Each runtime runs in
# its own process; runtimes are alternated within every pass, over PASSES passes
# (default 3), so that a slow quarter of an hour hits them all alike. Medians,
# and each runtime's ratio to vine. Needs libtbb-dev (oneTBB) and cargo (rayon).
# Then one run of lost.c: where vine's time goes on the 100 us tasks, and one
# of phases.c: the calling thread's cost per task, call by call.
set -euo pipefail
cd "$(dirname "$0")"
root=../..
bin=$root/benches/bin
mkdir -p "$bin"
cargo build --release -q --manifest-path "$root/Cargo.toml"
gcc -O2 -Wall -Wextra -Werror -I. vine.c "$root/target/release/libvine.a" -lpthread -ldl -lm -o "$bin/ip_vine"
gcc -O2 -Wall -Wextra -Werror -I. lost.c "$root/target/release/libvine.a" -lpthread -ldl -lm -o "$bin/ip_lost"
gcc -O2 -Wall -Wextra -Werror -I. phases.c "$root/target/release/libvine.a" -lpthread -ldl -lm -o "$bin/ip_phases"
gcc -O2 -Wall -Wextra -Werror -fopenmp omp.c -o "$bin/ip_omp"
runtimes=(vine omp tbb rayon)
if ! g++ -std=c++17 -O2 -Wall -Wextra -Werror tbb.cpp -ltbb -lpthread -o "$bin/ip_tbb" 2>/dev/null; then
    echo "SKIPPED: oneTBB (apt-get install libtbb-dev)" >&2
    runtimes=(vine omp rayon)
fi
cargo build --release -q --manifest-path rayon/Cargo.toml --target-dir "$root/target/bench-rayon"
cp "$root/target/bench-rayon/release/bench-rayon" "$bin/ip_rayon"

passes=${PASSES:-3}
# workload size what (higher is better unless noted)
workloads=(
    "spin100 20000"
    "spin1000 2000"
    "empty 1000000"
    "roundtrip 100000"
    "threads8 1000000"
    "mixed 20000"
)
declare -A vals
for p in $(seq "$passes"); do
    for wl in "${workloads[@]}"; do
        set -- $wl
        for rt in "${runtimes[@]}"; do
            case "$rt" in
                vine) cmd=(env VINE_LOCAL_CORES=2 "$bin/ip_vine") ;;
                omp) cmd=(env OMP_NUM_THREADS=2 "$bin/ip_omp") ;;
                *) cmd=("$bin/ip_$rt") ;;
            esac
            if out=$("${cmd[@]}" "$1" "$2" 2>/dev/null); then
                vals[$rt,$1]="${vals[$rt,$1]:-} $(echo "$out" | awk '{ print $3 }')"
            elif [ $? -ne 2 ]; then
                echo "$rt $1 failed" >&2
                exit 1
            fi
        done
    done
    echo "pass $p of $passes done" >&2
done

median() { printf '%s\n' $1 | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "" }'; }
cell() { # RUNTIME WORKLOAD
    local m v
    m=$(median "${vals[$1,$2]:-}")
    if [ -z "$m" ]; then echo "n/a"; return; fi
    v=$(median "${vals[vine,$2]:-}")
    local shown
    shown=$(awk -v x="$m" 'BEGIN { if (x >= 1000) printf "%.0f", x; else printf "%.3f", x }')
    if [ "$1" = vine ] || [ -z "$v" ]; then echo "$shown"; return; fi
    echo "$shown ($(awk -v a="$m" -v b="$v" 'BEGIN { printf "%.2f", a / b }') x vine)"
}
echo
echo "| workload (2 threads, $passes passes, medians) | vine | OpenMP (libgomp) | oneTBB task_group | rayon scope |"
echo "|---|---|---|---|---|"
label() {
    case "$1" in
        spin100) echo "20k x 100 us spin, efficiency (ideal/actual)" ;;
        spin1000) echo "2k x 1000 us spin, efficiency" ;;
        empty) echo "1M empty tasks, tasks/s" ;;
        roundtrip) echo "submit one, wait for it, us (lower is better)" ;;
        threads8) echo "1M empty tasks from 8 submitting threads, tasks/s" ;;
        mixed) echo "20k x 200 us, 2-core and 0.5-core alternately, efficiency (packing kept)" ;;
    esac
}
for wl in "${workloads[@]}"; do
    set -- $wl
    echo "| $(label "$1") | $(cell vine "$1") | $(cell omp "$1") | $(cell tbb "$1") | $(cell rayon "$1") |"
done
echo
for wl in "${workloads[@]}"; do
    set -- $wl
    for rt in "${runtimes[@]}"; do
        if [ -n "${vals[$rt,$1]:-}" ]; then echo "per pass, $rt $1:${vals[$rt,$1]}"; fi
    done
done
echo
echo "Where vine's spin100 loses time (one run; see lost.c):"
env VINE_LOCAL_CORES=2 "$bin/ip_lost" 20000
echo
echo "Where the calling thread's time goes on the empty tasks (one run; see phases.c):"
env VINE_LOCAL_CORES=2 "$bin/ip_phases" 1000000
