#!/usr/bin/env bash
# What automatic sizing buys: TASKS (default 48) commands that declare nothing
# but touch 200 MB and use a little CPU, then hold the memory 1 s, on 2 remote
# vine_workers of 4 cores and 1 GB each, sized automatically (MAX_THROUGHPUT,
# category-steady-n-tasks 4), a whole worker per task (TaskVine's default for
# undeclared tasks), and vine's default (one core, no memory bound). PASSES
# (default 3) alternated passes; medians of the makespan.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=benches/bin
mkdir -p "$bin"
cargo build --release -q
gcc -O2 -Wall -Wextra -Werror benches/sizing/hog.c -o "$bin/hog"
gcc -O2 -Wall -Wextra -Werror -Iinclude benches/sizing/sizing.c target/release/libvine.a \
    -lpthread -ldl -lm -o "$bin/sizing"
passes=${PASSES:-3}
n=${TASKS:-48}
hog=$(realpath "$bin/hog")
declare -A make lines
for p in $(seq "$passes"); do
    for mode in auto whole default; do
        port=$((20000 + RANDOM % 20000))
        "$bin/sizing" "$mode" "$port" 2 "$n" "$hog" 200 100 > "$bin/sizing.out" &
        pid=$!
        workers=()
        for _ in 1 2; do
            target/release/vine_worker 127.0.0.1 "$port" --cores 4 --memory 1024 --disk 4096 \
                --timeout 30 >/dev/null 2>&1 &
            workers+=($!)
        done
        wait "$pid"
        kill "${workers[@]}" 2>/dev/null || true
        wait "${workers[@]}" 2>/dev/null || true
        line=$(cat "$bin/sizing.out")
        echo "pass $p: $line"
        make[$mode]+="$(echo "$line" | awk '{ print $3 }') "
        lines[$mode]=$line
    done
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
field() { echo "${lines[$1]}" | awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }'; }
echo
echo "| $n tasks of 200 MB, 2 workers of 4 cores + 1 GB | most running at once | makespan (s, median of $passes) | last task given |"
echo "|---|---|---|---|"
for mode in auto whole default; do
    name=$mode
    [ "$mode" = auto ] && name="automatic (MAX_THROUGHPUT)"
    [ "$mode" = whole ] && name="whole worker per task"
    [ "$mode" = default ] && name="vine's default (1 core, no memory bound)"
    echo "| $name | $(field "$mode" peak_running) | $(median ${make[$mode]}) | $(field "$mode" last_cores) cores, $(field "$mode" last_memory_mb) MB |"
done
