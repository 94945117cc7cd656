#!/usr/bin/env bash
# Two properties of push that a throughput table does not show, measured on one
# switchboard server (--workers 1):
#
# 1. Matching does not scan: server CPU per publish with one matching subscriber,
#    then the same with 100,000 non-matching prefixes held over 1,000 connections.
# 2. A stalled watcher costs its output limit: with --max-output 1m and the change log
#    at its byte bound (--change-log-bytes 8m, filled first), a watch run (1 writer,
#    2 watchers, 1000-byte values over 1,000 keys) with and without a watcher that
#    never reads; the server's peak RSS during each, the other watchers' delivery p99, and
#    whether the stalled one, reading at last, gets every change or a GAP.
#
# Usage: benches/push.sh         (about 1 minute)
# Environment: DURATION=5s WARMUP=1s REPEAT=3
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
REPEAT=${REPEAT:-3}
command -v jq >/dev/null || { echo "push.sh: needs jq" >&2; exit 1; }

cargo build --release --quiet -p switchboard --bin switchboard
cargo build --release --quiet -p switchboard-load
LOAD=target/release/switchboard-load
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

start() {
    local name=$1
    shift
    : >"$WORK/$name.out"
    target/release/switchboard --listen 127.0.0.1:0 --workers 1 "$@" >>"$WORK/$name.out" 2>&1 &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 100); do
        ADDR=$(sed -n 's/^listening on //p' "$WORK/$name.out" | head -n1)
        [[ -n $ADDR ]] && return 0
        sleep 0.1
    done
    echo "push.sh: $name did not start" >&2
    exit 1
}
# Peak RSS since the last reset (writing 5 to clear_refs resets VmHWM).
reset_peak() { echo 5 >"/proc/$1/clear_refs"; }
peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

echo "1. matching: server CPU per publish, 1 subscriber, median of $REPEAT" >&2
printf '%-34s %12s %14s\n' "non-matching subscriptions" "publishes/s" "srv us/publish"
for idle in 0 100000; do
    values=()
    for i in $(seq 1 "$REPEAT"); do
        start "match-$idle-$i"
        "$LOAD" --addr "$ADDR" --workload pubsub --subscribers 1 --publishers 1 --pipeline 16 \
            --value-size 64 --duration "$DURATION" --warmup "$WARMUP" --quiet --server-pid "$PID" \
            --idle-subscriptions "$idle" --idle-connections 1000 --json "$WORK/m.json" >/dev/null
        kill "$PID"
        values+=("$(jq -r '"\(.published_per_sec)\t\(.server_cpu_us_per_send)"' "$WORK/m.json")")
    done
    row=$(printf '%s\n' "${values[@]}" | sort -g -k2,2 | sed -n "$(((REPEAT + 1) / 2))p")
    IFS=$'\t' read -r pps cpu <<<"$row"
    printf '%-34s %12.0f %14.3f\n' "$idle over 1000 connections" "$pps" "$cpu"
done

echo "2. a stalled watcher" >&2
start stall --max-output 1m --change-log-bytes 8m
WATCH=("$LOAD" --addr "$ADDR" --workload watch --publishers 1 --subscribers 2 --pipeline 16
    --keys 1000 --value-size 1000 --duration "$DURATION" --warmup "$WARMUP" --quiet)
"${WATCH[@]}" >/dev/null # fills the change log to its byte bound
printf '%-22s %10s %12s %12s %10s\n' run "writes/s" "watcher p99" "peak RSS" "resumed"
for stalled in 0 1 0 1; do
    reset_peak "$PID"
    "${WATCH[@]}" --stalled-subscribers "$stalled" --json "$WORK/w.json" >/dev/null
    jq -r --arg name "stalled watchers: $stalled" --argjson rss "$(peak_rss_kib "$PID")" \
        '"\($name)\t\(.published_per_sec)\t\(.latency_us.p99)\t\($rss)\t\(.stalled_resumed_whole)/\(.stalled_resumed_whole + .stalled_resumed_broken)"' \
        "$WORK/w.json" | awk -F'\t' '{ printf "%-22s %10.0f %9.1f us %8d KiB %10s\n", $1, $2, $3, $4, $5 }'
done
