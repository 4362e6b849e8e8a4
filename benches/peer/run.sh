#!/usr/bin/env bash
# Transfers between workers: one 200 MB input read by one task on each of 4 remote
# workers on loopback, with peer transfers (the default) and without. Reports the
# wall time from the first submit to the last result and the bytes the manager
# sent (bytes_sent) and that moved between workers (bytes_peer), median of 3
# passes for the time (the bytes are the same in every pass), as a markdown table.
# A third row runs the same with peer transfers on and every link under TLS.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=benches/bin
mkdir -p "$bin"
cargo build --release -q
gcc -O2 -Wall -Wextra -Werror -Iinclude benches/peer/fanout.c target/release/libvine.a \
    -lpthread -ldl -lm -o "$bin/peer_fanout"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c $((200 << 20)) /dev/urandom > "$work/input"
n=4

# pass MODE: one run; prints "wall_s bytes_sent bytes_peer"
pass() {
    local out="$work/out" pids=()
    "$bin/peer_fanout" "$work/input" "$n" "$1" > "$out" &
    local mgr=$!
    until grep -q '^port ' "$out"; do sleep 0.05; done
    local port tls=()
    port=$(awk '/^port / { print $2 }' "$out")
    if [ "$1" = peertls ]; then
        tls=(--ssl-fingerprint "$(awk '/^fingerprint / { print $2 }' "$out")")
    fi
    for i in $(seq 0 $((n - 1))); do
        target/release/vine_worker 127.0.0.1 "$port" --cores 1 --timeout 30 \
            --feature "w$i" --workdir "$work" "${tls[@]}" > /dev/null 2>&1 &
        pids+=($!)
    done
    wait "$mgr"
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    awk '$1 == "wall_s" { w = $2 } $1 == "bytes_sent" { s = $2 } $1 == "bytes_peer" { p = $2 }
         END { print w, s, p }' "$out"
}

declare -A wall sent peer
for mode in peer nopeer peertls; do
    times=()
    for _ in 1 2 3; do
        read -r w s p < <(pass "$mode")
        times+=("$w")
        sent[$mode]=$s
        peer[$mode]=$p
    done
    wall[$mode]=$(printf '%s\n' "${times[@]}" | sort -g | sed -n 2p)
done

mb() { echo "scale=1; $1 / 1048576" | bc; }
echo "| one 200 MB input to $n workers | wall time (s, median of 3) | sent by the manager (MB) | between workers (MB) |"
echo "|---|---|---|---|"
echo "| peer transfers on (default) | ${wall[peer]} | $(mb "${sent[peer]}") | $(mb "${peer[peer]}") |"
echo "| peer transfers off | ${wall[nopeer]} | $(mb "${sent[nopeer]}") | $(mb "${peer[nopeer]}") |"
echo "| peer transfers on, every link under TLS | ${wall[peertls]} | $(mb "${sent[peertls]}") | $(mb "${peer[peertls]}") |"
