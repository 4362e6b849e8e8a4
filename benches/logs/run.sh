#!/usr/bin/env bash
# What the transactions log costs the in-process path: 1M empty function tasks on
# 2 local cores (bench_vine throughput), without and with the log, alternated over
# PASSES passes (default 5) so that a slow moment hits both alike; medians. Also
# the log's size and how long vine_delete takes to finish writing it.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=benches/bin
mkdir -p "$bin"
cargo build --release -q
gcc -O2 -Wall -Wextra -Werror -Iinclude benches/local/bench_vine.c target/release/libvine.a \
    -lpthread -ldl -lm -o "$bin/bench_vine"
passes=${PASSES:-5}
n=${TASKS:-1000000}
log=$(mktemp -d)/transactions
off=() on=() flush=()
for _ in $(seq "$passes"); do
    off+=("$("$bin/bench_vine" throughput "$n" | awk '{ print $3 }')")
    out=$(VINE_BENCH_TXN="$log" "$bin/bench_vine" throughput "$n" 2>&1)
    on+=("$(echo "$out" | awk '/throughput/ { print $3 }')")
    flush+=("$(echo "$out" | awk '/delete_s/ { print $3 }')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
m_off=$(median "${off[@]}")
m_on=$(median "${on[@]}")
m_flush=$(median "${flush[@]}")
lines=$(wc -l < "$log")
bytes=$(stat -c %s "$log")
rm -rf "$(dirname "$log")"
echo
echo "| $n empty tasks, 2 local cores ($passes passes, medians) | tasks/s |"
echo "|---|---|"
echo "| no log | $m_off |"
echo "| transactions log on | $m_on |"
echo "| throughput kept | $(echo "$m_on / $m_off * 100" | bc -l | xargs printf '%.1f') % |"
echo "| log written | $lines lines, $((bytes / 1000000)) MB |"
echo "| vine_delete finishing the log (s) | $m_flush |"
echo
echo "per pass, no log: ${off[*]}"
echo "per pass, log on: ${on[*]}"
