#!/usr/bin/env bash
# Two builds of the server, side by side: server CPU per request and throughput for
# GET and PUT at pipeline 1 and 16, each shape run REPEAT times round-robin over the
# two builds (and both worker settings), median kept. For "did this change make a
# request cheaper or dearer", where compare.sh's single runs are too noisy.
#
# Usage: benches/ab.sh OLD_BINARY NEW_BINARY       (about 4 minutes with the defaults)
# Environment: REPEAT=5 DURATION=3s WARMUP=1s CONNECTIONS=50 KEYS=100000 VALUE=64
#              WORKERS="0 1" SHAPES="get:1 get:16 put:1 put:16"
set -euo pipefail
cd "$(dirname "$0")/.."

OLD=$1
NEW=$2
REPEAT=${REPEAT:-5}
DURATION=${DURATION:-3s}
WARMUP=${WARMUP:-1s}
CONNECTIONS=${CONNECTIONS:-50}
KEYS=${KEYS:-100000}
VALUE=${VALUE:-64}
WORKERS=${WORKERS:-"0 1"}
SHAPES=${SHAPES:-"get:1 get:16 put:1 put:16"}

cargo build --release --quiet -p switchboard-load
LOAD=target/release/switchboard-load
TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

declare -A ADDR PID
start() {
    local name=$1 bin=$2 workers=$3
    : >"$WORK/$name.out"
    "$bin" --listen 127.0.0.1:0 --workers "$workers" >>"$WORK/$name.out" 2>/dev/null &
    PID[$name]=$!
    PIDS+=("$!")
    for _ in $(seq 1 100); do
        ADDR[$name]=$(sed -n 's/^listening on //p' "$WORK/$name.out" | head -n1)
        [[ -n ${ADDR[$name]} ]] && break
        sleep 0.1
    done
    "$LOAD" --addr "${ADDR[$name]}" --keys "$KEYS" --value-size "$VALUE" --mix put=1 \
        --key-dist sequential --requests "$KEYS" --warmup 0s --pipeline 16 --quiet >/dev/null
}

SERVERS=()
for w in $WORKERS; do
    start "old-w$w" "$OLD" "$w"
    start "new-w$w" "$NEW" "$w"
    SERVERS+=("old-w$w" "new-w$w")
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One run: "ops/s cpu_us_per_request".
one() {
    local name=$1
    shift
    local before after
    before=$(cpu "${PID[$name]}")
    "$LOAD" --addr "${ADDR[$name]}" --connections "$CONNECTIONS" --keys "$KEYS" \
        --value-size "$VALUE" --duration "$DURATION" --warmup "$WARMUP" --quiet \
        --json "$WORK/run.json" "$@" >/dev/null
    after=$(cpu "${PID[$name]}")
    jq -r --argjson t $((after - before)) --argjson tck "$TCK" \
        '[.throughput_ops_per_sec, ($t * 1e6 / $tck / .answered_total)] | @tsv' "$WORK/run.json"
}

printf '%-8s %-8s %12s %12s   (median of %s)\n' shape server "ops/s" "cpu us/req" "$REPEAT"
for shape in $SHAPES; do
    IFS=: read -r op pipe <<<"$shape"
    declare -A runs=()
    for _ in $(seq 1 "$REPEAT"); do
        for s in "${SERVERS[@]}"; do
            runs[$s]+="$(one "$s" --mix "$op=1" --pipeline "$pipe")"$'\n'
        done
    done
    for s in "${SERVERS[@]}"; do
        median=$(printf '%s' "${runs[$s]}" | sort -g -k2,2 | sed -n "$(((REPEAT + 1) / 2))p")
        IFS=$'\t' read -r tput cpu_us <<<"$median"
        printf '%-8s %-8s %12.0f %12.3f\n' "$op-p$pipe" "$s" "$tput" "$cpu_us"
    done
    unset runs
done
