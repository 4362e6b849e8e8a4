#!/usr/bin/env bash
# Local benchmarks, side by side in one run on 2 cores: vine (through its C API),
# OpenMP tasks (libgomp, 2 threads) and a bare two-thread crossbeam pool (the floor
# for a channel hand-off). Each measure runs 5 times; the median is reported (libgomp's
# empty-task rate alone varies 4-30 M/s between runs, depending on how many tasks it
# runs inline on the producer).
# The same throughput and round trip through the C++ wrapper show what it costs.
# Then the cost of the transactions log (benches/logs/run.sh), the in-process
# comparison with oneTBB and rayon (benches/inprocess/run.sh), the remote-worker
# benchmark (benches/remote/run.sh), automatic sizing (benches/sizing/run.sh), peer
# transfers (benches/peer/run.sh) and the factories on Slurm (benches/factory/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=benches/bin
mkdir -p "$bin"
cargo build --release -q
cargo build --release -q --bench crossbeam_floor
floor=$(ls -t target/release/deps/crossbeam_floor-* | grep -v '\.d$' | head -1)
gcc -O2 -Wall -Wextra -Werror -Iinclude benches/local/bench_vine.c target/release/libvine.a \
    -lpthread -ldl -lm -o "$bin/bench_vine"
gcc -O2 -Wall -Wextra -Werror -fopenmp benches/local/bench_omp.c -o "$bin/bench_omp"
g++ -std=c++17 -O2 -Wall -Wextra -Werror -Iinclude benches/local/bench_vine.cpp \
    target/release/libvine.a -lpthread -ldl -lm -o "$bin/bench_vine_cpp"

# median MEASURE N PROGRAM...
median() {
    local measure=$1 n=$2; shift 2
    for _ in 1 2 3 4 5; do "$@" "$measure" "$n" | awk '{ print $3 }'; done | sort -g | sed -n 3p
}

declare -A r
for impl in vine omp floor; do
    case $impl in
        vine) prog=("$bin/bench_vine") ;;
        omp) prog=(env OMP_NUM_THREADS=2 "$bin/bench_omp") ;;
        floor) prog=("$floor") ;;
    esac
    r[$impl,tp]=$(median throughput 1000000 "${prog[@]}")
    r[$impl,rt]=$(median roundtrip 100000 "${prog[@]}")
    r[$impl,eff]=$(median efficiency 20000 "${prog[@]}")
    r[$impl,mem]=$(median memory 1000000 "${prog[@]}")
done
relay=$(median relay 100000 "$floor")
cpp_tp=$(median throughput 1000000 "$bin/bench_vine_cpp")
cpp_rt=$(median roundtrip 100000 "$bin/bench_vine_cpp")
byid=$(median byid 100000 "$bin/bench_vine")

ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
verdict() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo PASS; else echo MISS; fi; }
tp_ratio=$(ratio "${r[vine,tp]}" "${r[omp,tp]}")
rt_ratio=$(ratio "${r[vine,rt]}" "${r[floor,rt]}")
eff_ratio=$(ratio "${r[vine,eff]}" "${r[omp,eff]}")

echo
echo "| measure (2 local cores) | vine | OpenMP | crossbeam floor | target | |"
echo "|---|---|---|---|---|---|"
echo "| throughput, 1M empty tasks (tasks/s) | ${r[vine,tp]} | ${r[omp,tp]} | ${r[floor,tp]} | vine/OpenMP >= 0.25: ${tp_ratio} | $(verdict "$tp_ratio >= 0.25") |"
echo "| round trip, 100k submit+wait (ns) | ${r[vine,rt]} | ${r[omp,rt]} | ${r[floor,rt]} (through a relay thread: ${relay}) | vine/floor <= 2: ${rt_ratio} | $(verdict "$rt_ratio <= 2") |"
echo "| efficiency, 20k x 100 us (ideal/actual) | ${r[vine,eff]} | ${r[omp,eff]} | ${r[floor,eff]} | vine/OpenMP >= 1: ${eff_ratio} | $(verdict "$eff_ratio >= 1") |"
echo "| memory, 1M queued 16-byte tasks (bytes/task) | ${r[vine,mem]} | ${r[omp,mem]} (libgomp runs tasks inline past 64/thread) | ${r[floor,mem]} | vine <= 300 | $(verdict "${r[vine,mem]} <= 300") |"

echo
echo "| the C++ wrapper (vine.hpp) | C API | C++ wrapper |"
echo "|---|---|---|"
echo "| throughput, 1M empty tasks (tasks/s) | ${r[vine,tp]} | ${cpp_tp} |"
echo "| round trip, 100k submit+wait (ns) | ${r[vine,rt]} | ${cpp_rt} |"

echo
echo "| waiting by id | vine |"
echo "|---|---|"
echo "| 100k finished tasks taken with vine_wait_for_task_id, newest first (ns/wait) | ${byid} |"

# What the transactions log costs the same 1M empty tasks.
bash benches/logs/run.sh

# The in-process path against OpenMP, oneTBB and rayon, alternated over passes.
bash benches/inprocess/run.sh

if [ "${1:-}" != "--local-only" ]; then
    bash benches/remote/run.sh
    # Automatic sizing against whole workers and the one-core default.
    bash benches/sizing/run.sh
    # One input to four workers, with and without transfers between them.
    bash benches/peer/run.sh
    # Factories on this machine's Slurm (skipped without one: make slurm-up).
    bash benches/factory/run.sh
fi
