#!/usr/bin/env bash
# Remote workers over loopback, side by side in one run: vine and Work Queue
# (cctools) each run 5,000 empty commands on 2 workers of 1 core; the floor is
# the machine spawning `true` 5,000 times two at a time (xargs -P2). vine alone
# also runs 100,000 empty function tasks and a chain of 10,000 submit-wait links,
# beside the floor for a link here: a bare TCP ping-pong between two processes.
# Needs coop-computing-tools and coop-computing-tools-dev for the Work Queue side.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=benches/bin
mkdir -p "$bin"
cargo build --release -q
gcc -O2 -Wall -Wextra -Werror -Iinclude benches/remote/vine_remote.c target/release/libvine.a \
    -lpthread -ldl -lm -o "$bin/vine_remote"
gcc -O2 -Wall -Wextra -Werror benches/remote/tcp_pingpong.c -o "$bin/tcp_pingpong"
have_wq=0
if [ -f /usr/include/cctools/work_queue.h ] && command -v work_queue_worker >/dev/null; then
    gcc -O2 -Wall -Wextra -I/usr/include/cctools benches/remote/wq_remote.c \
        -lwork_queue -ldttools -lm -lz -lcrypt -o "$bin/wq_remote"
    have_wq=1
fi

value() { awk -v k="$1" '$2 == k { print $3 }'; }

floor_start=$(date +%s.%N)
seq 5000 | xargs -P2 -n1 true
floor_end=$(date +%s.%N)
floor=$(echo "5000 / ($floor_end - $floor_start)" | bc -l)

vine_cmd=$("$bin/vine_remote" commands 5000 | value commands_per_s)
vine_fn=$("$bin/vine_remote" functions 100000 | value functions_per_s)
vine_chain=$("$bin/vine_remote" chain 10000 | value chain_us_per_link)
pingpong=$("$bin/tcp_pingpong" 10000 | value pingpong_us_per_round_trip)

wq_cmd="n/a"
if [ "$have_wq" = 1 ]; then
    out=$(mktemp)
    "$bin/wq_remote" 5000 > "$out" &
    mgr=$!
    until grep -q '^port ' "$out"; do sleep 0.1; done
    port=$(awk '/^port / { print $2 }' "$out")
    work_queue_worker --cores 1 -t 60 localhost "$port" > /dev/null 2>&1 &
    w1=$!
    work_queue_worker --cores 1 -t 60 localhost "$port" > /dev/null 2>&1 &
    w2=$!
    wait "$mgr"
    kill "$w1" "$w2" 2>/dev/null || true
    wq_cmd=$(value commands_per_s < "$out")
    rm -f "$out"
fi

# The cost of security: the same function tasks and chain with a password (every
# frame authenticated by HMAC) and with a password over TLS.
pw=$(mktemp)
head -c 32 /dev/urandom | base64 > "$pw"
sec_fn=$(VINE_PASSWORD_FILE="$pw" "$bin/vine_remote" functions 100000 | value functions_per_s)
sec_chain=$(VINE_PASSWORD_FILE="$pw" "$bin/vine_remote" chain 10000 | value chain_us_per_link)
tls_fn=$(VINE_BENCH_TLS=1 VINE_PASSWORD_FILE="$pw" "$bin/vine_remote" functions 100000 | value functions_per_s)
tls_chain=$(VINE_BENCH_TLS=1 VINE_PASSWORD_FILE="$pw" "$bin/vine_remote" chain 10000 | value chain_us_per_link)
rm -f "$pw"

printf '\n| measure (2 workers x 1 core, loopback) | no password | password (frames MACed) | password + TLS |\n'
printf '|---|---|---|---|\n'
printf '| 100,000 empty function tasks, tasks/s | %s | %s | %s |\n' "$vine_fn" "$sec_fn" "$tls_fn"
printf '| chain of 10,000 submit-wait links, us/link | %s | %s | %s |\n' "$vine_chain" "$sec_chain" "$tls_chain"

printf '\n| measure (2 workers x 1 core, loopback) | vine | Work Queue | floor | target |\n'
printf '|---|---|---|---|---|\n'
printf '| 5,000 empty commands, tasks/s | %s | %s | %.0f (xargs -P2) | floor/vine = %.2f (<= 1.5) |\n' \
    "$vine_cmd" "$wq_cmd" "$floor" "$(echo "$floor / $vine_cmd" | bc -l)"
printf '| 100,000 empty function tasks, tasks/s | %s | - | - | >= 50,000 |\n' "$vine_fn"
printf '| chain of 10,000 submit-wait links, us/link | %s | - | %s (TCP ping-pong) | < 200 |\n' \
    "$vine_chain" "$pingpong"
