#!/usr/bin/env bash
# Server instructions per request, counted by callgrind: a steady figure on a noisy
# machine, for comparing two builds of the server.
#
# Usage: benches/instructions.sh BINARY [BINARY...]
# For each binary and shape (GET and PUT, pipeline 1 and 16, --workers 0 and 1), runs
# the server under callgrind twice, driven by switchboard-load with N and 2N requests
# over 10 connections to 10,000 preloaded keys, and prints (Ir(2N) - Ir(N)) / N: the
# instructions the server spends per request, start-up and preload cancelled out.
# Environment: N=20000 (requests in the shorter run).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
LOAD=${LOAD:-target/release/switchboard-load}
cargo build --release --quiet -p switchboard-load
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# instructions BINARY WORKERS REQUESTS LOAD-ARGS...: total Ir of one server run.
instructions() {
    local bin=$1 workers=$2 requests=$3
    shift 3
    local out=$WORK/cg.out
    rm -f "$out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --listen 127.0.0.1:0 \
        --workers "$workers" >"$WORK/server.out" 2>"$WORK/server.err" &
    local pid=$!
    local addr=""
    for _ in $(seq 1 200); do
        addr=$(sed -n 's/^listening on //p' "$WORK/server.out" | head -n1)
        [[ -n $addr ]] && break
        sleep 0.1
    done
    [[ -n $addr ]] || { echo "no address from $bin" >&2; cat "$WORK/server.err" >&2; exit 1; }
    "$LOAD" --addr "$addr" --connections 10 --keys 10000 --value-size 64 --mix put=1 \
        --key-dist sequential --requests 10000 --warmup 0s --pipeline 16 --quiet >/dev/null
    "$LOAD" --addr "$addr" --connections 10 --keys 10000 --value-size 64 --warmup 0s \
        --requests "$requests" --quiet "$@" >/dev/null
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

printf '%-28s %-8s %-8s %12s\n' binary workers shape "Ir/request"
for bin in "$@"; do
    for workers in 0 1; do
        for shape in get:1 get:16 put:1 put:16; do
            IFS=: read -r op pipe <<<"$shape"
            args=(--mix "$op=1" --pipeline "$pipe")
            one=$(instructions "$bin" "$workers" "$N" "${args[@]}")
            two=$(instructions "$bin" "$workers" $((2 * N)) "${args[@]}")
            printf '%-28s %-8s %-8s %12.0f\n' "$bin" "$workers" "$op-p$pipe" \
                "$(awk -v a="$one" -v b="$two" -v n="$N" 'BEGIN { print (b - a) / n }')"
        done
    done
done
