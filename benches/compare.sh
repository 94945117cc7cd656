#!/usr/bin/env bash
# Compare switchboard with Redis, memcached and the I/O floor under the same load.
#
# Starts each server on a free loopback port (switchboard with --workers 0 and 1,
# examples/floor.rs, redis-server, memcached -t 1), drives every one with
# switchboard-load in the same shapes (50 connections, 64-byte values, 100k keys;
# GET and PUT at pipeline 1 and 16; a 90/10 mix; the mix at a fixed rate of half
# Redis's pipeline-1 throughput), keeps the median of REPEAT runs, and also runs
# redis-benchmark against Redis as a cross-check of the generator. Then fan-out:
# 10 subscribers, 1 publisher at pipeline 16, 64-byte payloads, switchboard against
# Redis's PUBLISH/SUBSCRIBE (deliveries/s, delivery latency, server CPU per delivery).
# Server CPU per request comes from /proc/PID/stat (user+system ticks) before and
# after each run.
#
# Usage: benches/compare.sh            (about 5-6 minutes; hard limit 10)
# Environment: DURATION=2s RATE_DURATION=5s WARMUP=1s REPEAT=3 CONNECTIONS=50
#              KEYS=100000 VALUE=64
#              BASELINE=path/to/an/earlier/switchboard: also runs that build
#              (--workers 0 and 1), for a before/after in the same run (about 8
#              minutes; hard limit 14).
#
# Every shape runs round-robin over the servers, REPEAT times, so a burst of load
# from elsewhere on the machine lands on one run of each server rather than on all
# runs of one, and the medians compare like with like.
#
# Never installs anything. Needs: redis-server, redis-benchmark, memcached, jq.
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-2s}
# Longer for the fixed rate: a p99 over 2 s moves with any 20 ms stall of the machine.
RATE_DURATION=${RATE_DURATION:-5s}
WARMUP=${WARMUP:-1s}
REPEAT=${REPEAT:-3}
CONNECTIONS=${CONNECTIONS:-50}
KEYS=${KEYS:-100000}
VALUE=${VALUE:-64}
BASELINE=${BASELINE:-}
if [[ -n $BASELINE ]]; then
    BUDGET_S=${BUDGET_S:-830}
else
    BUDGET_S=${BUDGET_S:-570}
fi

missing=()
for tool in redis-server redis-benchmark memcached jq; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "compare.sh: missing ${missing[*]}." >&2
    echo "  On Debian/Ubuntu: apt-get install redis-server redis-tools memcached jq" >&2
    echo "  (redis-benchmark is in redis-tools). This script installs nothing." >&2
    exit 1
fi

START_S=$SECONDS
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

over_budget() { ((SECONDS - START_S > BUDGET_S)); }

echo "building release binaries..." >&2
cargo build --release --quiet --workspace --bin switchboard --bin switchboard-load --example floor
LOAD=target/release/switchboard-load
TCK=$(getconf CLK_TCK)

# A loopback port nobody listens on.
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "compare.sh: no free port found" >&2
    exit 1
}

# Waits (bounded) until something accepts on 127.0.0.1:$1.
wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "compare.sh: nothing listens on port $1 after 10 s" >&2
    exit 1
}

# Starts a server that prints "listening on HOST:PORT"; sets ADDR and PID.
start_printing() {
    local name=$1
    shift
    # Create the files first: the background job opens them only after the fork.
    : >"$WORK/$name.out"
    : >"$WORK/$name.err"
    "$@" >>"$WORK/$name.out" 2>>"$WORK/$name.err" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 100); do
        ADDR=$(sed -n 's/^listening on //p' "$WORK/$name.out" | head -n1)
        [[ -n $ADDR ]] && return 0
        sleep 0.1
    done
    echo "compare.sh: $name printed no address; stderr:" >&2
    cat "$WORK/$name.err" >&2
    exit 1
}

start_port() {
    local name=$1 port=$2
    shift 2
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PID=$!
    PIDS+=("$PID")
    ADDR=127.0.0.1:$port
    wait_port "$port"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

SERVERS=(switchboard-w0 switchboard-w1 floor redis memcached)
declare -A ADDRS PIDOF PROTO
if [[ -n $BASELINE ]]; then
    SERVERS=(baseline-w0 baseline-w1 "${SERVERS[@]}")
    start_printing baseline-w0 "$BASELINE" --listen 127.0.0.1:0 --workers 0
    ADDRS[baseline-w0]=$ADDR PIDOF[baseline-w0]=$PID PROTO[baseline-w0]=switchboard
    start_printing baseline-w1 "$BASELINE" --listen 127.0.0.1:0 --workers 1
    ADDRS[baseline-w1]=$ADDR PIDOF[baseline-w1]=$PID PROTO[baseline-w1]=switchboard
fi
start_printing switchboard-w0 target/release/switchboard --listen 127.0.0.1:0 --workers 0
ADDRS[switchboard-w0]=$ADDR PIDOF[switchboard-w0]=$PID PROTO[switchboard-w0]=switchboard
start_printing switchboard-w1 target/release/switchboard --listen 127.0.0.1:0 --workers 1
ADDRS[switchboard-w1]=$ADDR PIDOF[switchboard-w1]=$PID PROTO[switchboard-w1]=switchboard
start_printing floor target/release/examples/floor --listen 127.0.0.1:0
ADDRS[floor]=$ADDR PIDOF[floor]=$PID PROTO[floor]=switchboard
port=$(free_port)
start_port redis "$port" redis-server --port "$port" --bind 127.0.0.1 --save '' \
    --appendonly no --protected-mode no --daemonize no
ADDRS[redis]=$ADDR PIDOF[redis]=$PID PROTO[redis]=resp
port=$(free_port)
mc_user=()
((EUID == 0)) && mc_user=(-u root)
start_port memcached "$port" memcached -l 127.0.0.1 -p "$port" -U 0 -t 1 -m 1024 "${mc_user[@]}"
ADDRS[memcached]=$ADDR PIDOF[memcached]=$PID PROTO[memcached]=memcache

# name|switchboard-load arguments; "rate" gets --rate appended once Redis is measured.
SHAPES=(
    "get-p1|--mix get=1 --pipeline 1"
    "get-p16|--mix get=1 --pipeline 16"
    "put-p1|--mix put=1 --pipeline 1"
    "put-p16|--mix put=1 --pipeline 16"
    "mix90/10-p1|--mix get=9,put=1 --pipeline 1"
    "rate|--mix get=9,put=1 --pipeline 1"
)

# One run: prints "throughput p50 p99 server_cpu_us_per_req client_bound
# generator_cpu_us_per_req" (tab-separated, from the JSON).
one_run() {
    local server=$1 json=$2
    shift 2
    local pid=${PIDOF[$server]} before after
    before=$(cpu_ticks "$pid")
    timeout 60 "$LOAD" --addr "${ADDRS[$server]}" --protocol "${PROTO[$server]}" \
        --connections "$CONNECTIONS" --keys "$KEYS" --value-size "$VALUE" \
        --duration "${RUN_DURATION:-$DURATION}" --warmup "$WARMUP" --quiet --json "$json" \
        "$@" >/dev/null
    after=$(cpu_ticks "$pid")
    jq -r --argjson ticks $((after - before)) --argjson tck "$TCK" '
        [ .throughput_ops_per_sec, .latency_us.p50, .latency_us.p99,
          (if .answered_total > 0 then $ticks * 1e6 / $tck / .answered_total else 0 end),
          .client_bound, .client_cpu_us_per_request ] | @tsv' "$json"
}

preload() {
    local server=$1
    timeout 60 "$LOAD" --addr "${ADDRS[$server]}" --protocol "${PROTO[$server]}" \
        --connections "$CONNECTIONS" --keys "$KEYS" --value-size "$VALUE" \
        --mix put=1 --key-dist sequential --requests "$KEYS" --warmup 0s --pipeline 16 \
        --quiet >/dev/null
}

declare -A RESULT
RATE=""

# The closed-loop shapes, each round-robin over every server REPEAT times.
run_shapes_interleaved() {
    local shape name server i
    local -a args
    for server in "${SERVERS[@]}"; do
        preload "$server"
    done
    for shape in "${SHAPES[@]}"; do
        name=${shape%%|*}
        read -r -a args <<<"${shape#*|}"
        # The fixed-rate shape runs later, once Redis's throughput sets the rate.
        [[ $name == rate ]] && continue
        declare -A runs=()
        for i in $(seq 1 "$REPEAT"); do
            for server in "${SERVERS[@]}"; do
                if over_budget; then
                    echo "compare.sh: time budget spent, skipping $server $name" >&2
                    continue
                fi
                runs[$server]+="$(one_run "$server" "$WORK/$server-$i.json" "${args[@]}")"$'\n'
            done
        done
        for server in "${SERVERS[@]}"; do
            [[ -n ${runs[$server]:-} ]] || continue
            local -a lines
            mapfile -t lines < <(printf '%s' "${runs[$server]}")
            keep_median "$server" "$name" 1 "${lines[@]}"
        done
        unset runs
    done
}

# keep_median SERVER SHAPE SORT_COLUMN RUN...: keeps the median run by that column
# (throughput when closed-loop, p99 at a fixed rate).
keep_median() {
    local server=$1 name=$2 sortkey=$3
    shift 3
    RESULT[$server,$name]=$(printf '%s\n' "$@" |
        sort -g -k"$sortkey","$sortkey" | sed -n "$((($# + 1) / 2))p")
    echo "  $server $name: ${RESULT[$server,$name]}" >&2
}

# The fixed rate, round-robin over the servers REPEAT times, like the other shapes.
run_rate_interleaved() {
    local server i
    local -a args
    read -r -a args <<<"${SHAPES[5]#*|}"
    args+=(--rate "$RATE")
    declare -A runs
    for i in $(seq 1 "$REPEAT"); do
        for server in "${SERVERS[@]}"; do
            over_budget && break 2
            runs[$server]+="$(RUN_DURATION=$RATE_DURATION one_run "$server" \
                "$WORK/$server-rate-$i.json" "${args[@]}")"$'\n'
        done
    done
    for server in "${SERVERS[@]}"; do
        [[ -n ${runs[$server]:-} ]] || continue
        local -a lines
        mapfile -t lines < <(printf '%s' "${runs[$server]}")
        keep_median "$server" rate 3 "${lines[@]}"
    done
}

echo "running shapes (median of $REPEAT, $WARMUP warm-up + $DURATION each)..." >&2
run_shapes_interleaved
redis_p1=$(cut -f1 <<<"${RESULT[redis,mix90/10-p1]}")
RATE=$(awk -v t="$redis_p1" 'BEGIN { printf "%d", t / 2 }')
echo "fixed rate $RATE ops/s, servers interleaved..." >&2
run_rate_interleaved

# redis-benchmark on the same shapes (it has no mixes and no fixed rate).
declare -A RB
rb_port=${ADDRS[redis]##*:}
for shape in get-p1:get:1 get-p16:get:16 put-p1:set:1 put-p16:set:16; do
    IFS=: read -r name test pipe <<<"$shape"
    over_budget && break
    n=$((pipe == 1 ? 100000 : 600000))
    before=$(cpu_ticks "${PIDOF[redis]}")
    line=$(timeout 60 redis-benchmark -h 127.0.0.1 -p "$rb_port" -c "$CONNECTIONS" -n "$n" \
        -d "$VALUE" -r "$KEYS" -P "$pipe" -t "$test" --csv | tail -n1 | tr -d '"')
    after=$(cpu_ticks "${PIDOF[redis]}")
    # test,rps,avg,min,p50,p95,p99,max (ms)
    RB[$name]=$(awk -F, -v ticks=$((after - before)) -v tck="$TCK" -v n="$n" \
        '{ printf "%s\t%s\t%s\t%s\tfalse\t-", $2, $5 * 1000, $7 * 1000, ticks * 1e6 / tck / n }' <<<"$line")
done

# Fan-out: one publisher, ten subscribers, round-robin over the servers that have
# publish/subscribe. Prints "deliveries/s p50 p99 server_cpu_us_per_delivery".
declare -A FANOUT
FANOUT_SERVERS=()
for server in "${SERVERS[@]}"; do
    [[ $server == floor || $server == memcached ]] || FANOUT_SERVERS+=("$server")
done
fanout_run() {
    local server=$1 json=$2 pid=${PIDOF[$1]}
    timeout 60 "$LOAD" --addr "${ADDRS[$server]}" --protocol "${PROTO[$server]}" \
        --workload pubsub --subscribers 10 --publishers 1 --pipeline 16 --value-size "$VALUE" \
        --duration "$DURATION" --warmup "$WARMUP" --server-pid "$pid" --quiet --json "$json" \
        >/dev/null || true
    jq -r '[ .deliveries_per_sec, .latency_us.p50, .latency_us.p99,
             .server_cpu_us_per_delivery ] | @tsv' "$json"
}
echo "fan-out, servers interleaved..." >&2
declare -A fruns=()
for i in $(seq 1 "$REPEAT"); do
    for server in "${FANOUT_SERVERS[@]}"; do
        over_budget && break 2
        fruns[$server]+="$(fanout_run "$server" "$WORK/$server-fanout-$i.json")"$'\n'
    done
done
for server in "${FANOUT_SERVERS[@]}"; do
    [[ -n ${fruns[$server]:-} ]] || continue
    FANOUT[$server]=$(printf '%s' "${fruns[$server]}" | sort -g -k1,1 | sed -n "$(((REPEAT + 1) / 2))p")
    echo "  $server fan-out: ${FANOUT[$server]}" >&2
done

printf '\nswitchboard-load, %s connections, %s-byte values, %s keys, median of %s x %s (+%s warm-up)\n' \
    "$CONNECTIONS" "$VALUE" "$KEYS" "$REPEAT" "$DURATION" "$WARMUP"
printf 'fixed rate = half of Redis mix90/10-p1 throughput = %s ops/s, median of %s x %s\n' \
    "$RATE" "$REPEAT" "$RATE_DURATION"
printf '%-12s %-16s %10s %9s %9s %9s %9s  %s\n' shape server "ops/s" "p50 us" "p99 us" \
    "srv us/req" "gen us/req" "vs redis"
for shape in "${SHAPES[@]}"; do
    name=${shape%%|*}
    base=${RESULT[redis,$name]:-}
    for server in "${SERVERS[@]}" redis-benchmark; do
        if [[ $server == redis-benchmark ]]; then
            row=${RB[$name]:-}
        else
            row=${RESULT[$server,$name]:-}
        fi
        [[ -n $row ]] || continue
        IFS=$'\t' read -r tput p50 p99 cpu bound gen <<<"$row"
        if [[ -z $base ]]; then
            ratio="-"
        elif [[ $name == rate ]]; then
            ratio=$(awk -v a="$p99" -v b="$(cut -f3 <<<"$base")" 'BEGIN { printf "p99 %.2fx", a / b }')
        else
            ratio=$(awk -v a="$tput" -v b="$(cut -f1 <<<"$base")" 'BEGIN { printf "%.2fx", a / b }')
        fi
        [[ $bound == true ]] && ratio="$ratio (client-bound)"
        [[ $gen == - ]] || gen=$(printf '%.2f' "$gen")
        printf '%-12s %-16s %10.0f %9.1f %9.1f %9.2f %9s  %s\n' \
            "$name" "$server" "$tput" "$p50" "$p99" "$cpu" "$gen" "$ratio"
    done
done

printf '\nfan-out: 1 publisher at pipeline 16, 10 subscribers, %s-byte payloads, median of %s x %s\n' \
    "$VALUE" "$REPEAT" "$DURATION"
printf '%-16s %12s %9s %9s %11s  %s\n' server "deliveries/s" "p50 us" "p99 us" "srv us/dlv" "vs redis"
for server in "${FANOUT_SERVERS[@]}"; do
    row=${FANOUT[$server]:-}
    [[ -n $row ]] || continue
    IFS=$'\t' read -r dps p50 p99 cpu <<<"$row"
    base=$(cut -f1 <<<"${FANOUT[redis]:-0}")
    ratio=$(awk -v a="$dps" -v b="$base" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
    printf '%-16s %12.0f %9.1f %9.1f %11.3f  %s\n' "$server" "$dps" "$p50" "$p99" "$cpu" "$ratio"
done
echo "(whole script: $((SECONDS - START_S)) s)"
