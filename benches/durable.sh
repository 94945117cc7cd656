#!/usr/bin/env bash
# What durability costs: switchboard with a write-ahead log (--data-dir) against
# Redis with an append-only file, and against switchboard in memory, in one run.
#
# Usage: benches/durable.sh              (about 4 minutes with the defaults; hard limit
#                                         BUDGET_S, then what is left is skipped)
#
# Four parts, every server driven by switchboard-load, CONNS connections, VALUE-byte
# values, every server started fresh (empty data directory) for every run:
#  1. PUT throughput at pipeline 1 and 16: switchboard --fsync always against
#     redis-server --appendonly yes --appendfsync always (targets: >= 1.3x Redis at
#     pipeline 1, >= 1.5x at pipeline 16).
#  2. The same shapes with switchboard --fsync everysec against switchboard without
#     --data-dir (target: within 15%), and Redis --appendfsync everysec for reference.
#  3. GET p99 on other connections while writers run: READ_KEYS keys are preloaded,
#     then an open-loop writer (CONNS connections, pipeline 16, WRITE_RATE PUTs/s
#     spread uniformly over 10^12 - 1 keys, so about 1 write in 10^7 lands
#     in the read range) runs beside an open-loop reader (READ_CONNS connections,
#     READ_RATE GETs/s over the preloaded keys): --fsync always against the same
#     load without --data-dir (target: p99 within 1.2x). The p99 is corrected
#     latency (from each request's intended send time).
#  4. Recovery: RECOVERY_RECORDS records (VALUE bytes, sequential keys, put-only,
#     --fsync always) are written RECOVERY_PASSES times over (each pass rewrites every
#     record, so the log outgrows twice the live data and is compacted: recovery then
#     loads a snapshot and replays the log after it; RECOVERY_PASSES=1 leaves a log
#     alone), the script waits for the compaction, then the server is stopped with SIGTERM and started
#     again on the same directory, RECOVERY_REPEAT times: time from exec to the
#     "listening on" line, and the server's own recovery_us (STATS). Each restart
#     is timed with the log in the page cache ("warm") and, alternately, after
#     dropping the log's pages from the cache (dd iflag=nocache: advice for those
#     files only, nothing system-wide) ("cold"). Target: < 1.5 s.
#
# Parts 1-3 go round-robin over the servers REPEAT (part 3: READ_REPEAT) times, so
# a burst of other load on the machine (it is shared) lands on one run of each
# rather than every run of one; the median run is kept, and ratios compare medians
# of the same run. Server CPU per request = the server process's user+system ticks
# (all threads, from /proc/PID/stat, as ../shared/tools/cpu-during measures) over
# the run, divided by the requests answered in it (warm-up included).
#
# Environment (defaults):
#   DURATION=3s WARMUP=1s REPEAT=3     each closed-loop run; parts 1-2 (WARMUP: 3 too)
#   READ_DURATION=5s READ_REPEAT=5     part 3's measured window and rounds (a p99
#                                      needs longer, and moves with every stall)
#   CONNS=50 VALUE=64 KEYS=100000      parts 1-2 (uniform keys)
#   READ_KEYS=100000 READ_RATE=5000 READ_CONNS=10
#   WRITE_RATE=                        part 3's writer; empty = half the median
#                                      PUT/s of switchboard --fsync always at
#                                      pipeline 1 in part 1 (20000 if part 1 is off)
#   RECOVERY_RECORDS=1000000 RECOVERY_REPEAT=3 RECOVERY_PASSES=3
#   PARTS="1 2 3 4"                    which parts to run (1 and 2 share runs)
#   DATA_ROOT=target/durable-bench     where the data directories go; must be the
#                                      disk being measured, not tmpfs (checked)
#   WORKERS=                           switchboard --workers (empty: its default)
#   BUDGET_S=900                       stop starting runs after this many seconds
#
# Prints the disk's fdatasync latency (a 1,000-write O_DSYNC dd loop in DATA_ROOT)
# first: under --fsync always it is the floor of every write's latency.
#
# Never installs anything. Needs: redis-server (Debian package redis-server), jq.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-3s}
WARMUP=${WARMUP:-1s}
REPEAT=${REPEAT:-3}
READ_DURATION=${READ_DURATION:-5s}
READ_REPEAT=${READ_REPEAT:-5}
CONNS=${CONNS:-50}
VALUE=${VALUE:-64}
KEYS=${KEYS:-100000}
READ_KEYS=${READ_KEYS:-100000}
READ_RATE=${READ_RATE:-5000}
READ_CONNS=${READ_CONNS:-10}
WRITE_RATE=${WRITE_RATE:-}
WRITE_KEYS=999999999999
RECOVERY_RECORDS=${RECOVERY_RECORDS:-1000000}
RECOVERY_REPEAT=${RECOVERY_REPEAT:-3}
RECOVERY_PASSES=${RECOVERY_PASSES:-3}
PARTS=${PARTS:-"1 2 3 4"}
DATA_ROOT=${DATA_ROOT:-target/durable-bench}
WORKERS=${WORKERS:-}
BUDGET_S=${BUDGET_S:-900}

missing=()
for tool in redis-server jq; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "durable.sh: missing ${missing[*]}." >&2
    echo "  On Debian/Ubuntu: apt-get install redis-server jq. This script installs nothing." >&2
    exit 1
fi

has_part() { [[ " $PARTS " == *" $1 "* ]]; }

START_S=$SECONDS
over_budget() { ((SECONDS - START_S > BUDGET_S)); }

mkdir -p "$DATA_ROOT"
DATA_ROOT=$(cd "$DATA_ROOT" && pwd)
RUN_ROOT=$(mktemp -d "$DATA_ROOT/run.XXXXXX")
WORK=$RUN_ROOT/work
mkdir -p "$WORK"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$RUN_ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building release binaries..." >&2
cargo build --release --quiet -p switchboard -p switchboard-load -p switchboard-cli
SB=target/release/switchboard
LOAD=target/release/switchboard-load
CLI=target/release/switchboard-cli
TCK=$(getconf CLK_TCK)

# The disk: file system, device, and what one small synced append costs.
fstype=$(findmnt -no FSTYPE -T "$RUN_ROOT" 2>/dev/null || stat -f -c %T "$RUN_ROOT")
device=$(df --output=source "$RUN_ROOT" | tail -n1)
if [[ $fstype == tmpfs || $fstype == ramfs ]]; then
    echo "durable.sh: $DATA_ROOT is on $fstype; set DATA_ROOT to a directory on a disk" >&2
    exit 1
fi
dd_s=$(dd if=/dev/zero of="$WORK/dsync" bs=128 count=1000 oflag=dsync 2>&1 |
    awk '/copied/ { print $(NF - 3) }')
rm -f "$WORK/dsync"
dsync_us=$(awk -v s="$dd_s" 'BEGIN { printf "%.0f", s * 1e6 / 1000 }')
echo "data in $DATA_ROOT: $fstype on $device; 128-byte O_DSYNC append: ${dsync_us} us each" >&2

# A loopback port nobody listens on, below the usual ephemeral range (32768 up).
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((10000 + RANDOM % 22000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "durable.sh: no free port found" >&2
    exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Server kinds: how each is started. "sb:MODE" is switchboard with --fsync MODE on
# a fresh directory (MODE "mem": no --data-dir), "redis:MODE" redis-server with
# --appendfsync MODE.
declare -A KIND=(
    [sb-always]=sb:always [redis-always]=redis:always
    [sb-everysec]=sb:everysec [sb-mem]=sb:mem [redis-everysec]=redis:everysec
)
worker_args=()
[[ -n $WORKERS ]] && worker_args=(--workers "$WORKERS")

# start NAME [DIR]: starts a fresh server of kind KIND[NAME] (with data in DIR, a
# new directory unless given); sets ADDR, PID, PROTO and DIR.
start() {
    local name=$1 kind=${KIND[$1]} port i
    DIR=${2:-$(mktemp -d "$RUN_ROOT/$name.XXXXXX")}
    : >"$WORK/$name.out"
    : >"$WORK/$name.err"
    case $kind in
    sb:*)
        PROTO=switchboard
        local data=()
        [[ $kind == sb:mem ]] || data=(--data-dir "$DIR" --fsync "${kind#sb:}")
        "$SB" --listen 127.0.0.1:0 "${worker_args[@]}" "${data[@]}" \
            >>"$WORK/$name.out" 2>>"$WORK/$name.err" &
        PID=$!
        PIDS+=("$PID")
        for i in $(seq 1 300); do
            ADDR=$(sed -n 's/^listening on //p' "$WORK/$name.out" | head -n1)
            [[ -n $ADDR ]] && return 0
            ((i % 10)) || kill -0 "$PID" 2>/dev/null || break
            sleep 0.05
        done
        ;;
    redis:*)
        PROTO=resp
        # A port nobody listens on may still be taken by a connection's local end:
        # then redis-server exits at once, and another port is tried.
        for _ in 1 2 3 4 5; do
            port=$(free_port)
            # No snapshots, and no automatic AOF rewrite (switchboard's log has no
            # compaction either): both servers append to a log and sync it.
            redis-server --bind 127.0.0.1 --port "$port" --dir "$DIR" --save '' \
                --appendonly yes --appendfsync "${kind#redis:}" \
                --auto-aof-rewrite-percentage 0 --daemonize no --protected-mode no \
                >>"$WORK/$name.out" 2>>"$WORK/$name.err" &
            PID=$!
            PIDS+=("$PID")
            ADDR=127.0.0.1:$port
            for _ in $(seq 1 200); do
                (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
                kill -0 "$PID" 2>/dev/null || break
                sleep 0.05
            done
            wait "$PID" 2>/dev/null || true
        done
        ;;
    esac
    echo "durable.sh: $name did not start; its output:" >&2
    cat "$WORK/$name.out" "$WORK/$name.err" >&2
    exit 1
}

# stop [KEEP]: SIGTERM to the server PID, waits (bounded) for it to exit, and removes
# its directory unless KEEP is given.
stop() {
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 300); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    [[ -n ${1:-} ]] || rm -rf "$DIR"
}

# sb_stat NAME: one figure from switchboard's STATS.
sb_stat() {
    timeout 10 "$CLI" --addr "$ADDR" stats 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'
}

# load ARGS...: switchboard-load against ADDR/PROTO, bounded in time.
load() {
    timeout 120 "$LOAD" --addr "$ADDR" --protocol "$PROTO" --value-size "$VALUE" --quiet "$@"
}

# One closed-loop PUT run on a fresh server. Sets LINE, tab-separated: ops/s, p50
# us, p99 us, server CPU us/request, client-bound, changes per sync, mean sync us.
# (Results come back in variables, not through $(...): a server started in a
# subshell would escape the cleanup.)
put_run() {
    local name=$1 pipe=$2 json=$3 before after per_sync="-" sync_us="-"
    start "$name"
    before=$(cpu_ticks "$PID")
    load --connections "$CONNS" --keys "$KEYS" --mix put=1 --pipeline "$pipe" \
        --duration "$DURATION" --warmup "$WARMUP" --json "$json" >/dev/null || true
    after=$(cpu_ticks "$PID")
    if [[ ${KIND[$name]} == sb:always || ${KIND[$name]} == sb:everysec ]]; then
        per_sync=$(sb_stat log_changes_per_sync)
        sync_us=$(sb_stat log_sync_us_mean)
    fi
    stop
    LINE=$(jq -r --argjson t $((after - before)) --argjson tck "$TCK" \
        --arg ps "${per_sync:--}" --arg su "${sync_us:--}" \
        '[ .throughput_ops_per_sec, .latency_us.p50, .latency_us.p99,
           ($t * 1e6 / $tck / ([.answered_total, 1] | max)),
           (.client_bound or .errors > 0), $ps, $su ] | @tsv' "$json")
}

# median_by COLUMN LINES: the median line by that column.
median_by() {
    local col=$1 lines=$2 n
    n=$(printf '%s\n' "$lines" | grep -c .)
    printf '%s\n' "$lines" | grep . | sort -g -k"$col","$col" | sed -n "$(((n + 1) / 2))p"
}

declare -A RESULT
col() { cut -f"$2" <<<"${RESULT[$1]:-}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "-" }'; }
verdict() { # verdict VALUE OP LIMIT
    awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
        if (v == "-" || v == "" || op == "") { print "-"; exit }
        ok = (op == ">=") ? v >= l : (op == "<=") ? v <= l : v < l
        print ok ? "met" : "MISSED" }'
}

# Parts 1 and 2: PUT throughput, pipeline 1 and 16.
PUT_SERVERS=()
has_part 1 && PUT_SERVERS+=(sb-always redis-always)
has_part 2 && PUT_SERVERS+=(sb-everysec sb-mem redis-everysec)
for pipe in 1 16; do
    ((${#PUT_SERVERS[@]})) || break
    declare -A runs=()
    echo "PUT, pipeline $pipe: ${PUT_SERVERS[*]}, $REPEAT rounds of $WARMUP + $DURATION..." >&2
    for i in $(seq 1 "$REPEAT"); do
        for name in "${PUT_SERVERS[@]}"; do
            if over_budget; then
                echo "durable.sh: time budget spent, skipping $name" >&2
                continue
            fi
            put_run "$name" "$pipe" "$WORK/$name-p$pipe-$i.json"
            echo "  round $i $name: $LINE" >&2
            runs[$name]+="$LINE"$'\n'
        done
    done
    for name in "${PUT_SERVERS[@]}"; do
        [[ -n ${runs[$name]:-} ]] && RESULT[$name,p$pipe]=$(median_by 1 "${runs[$name]}")
    done
    unset runs
done

# Part 3: GET p99 beside writers.
# read_run NAME JSON: preloads, starts the writer, measures the reader. Sets LINE:
# GET p50 us, p99 us, p999 us, misses, GETs/s, PUTs/s achieved, client-bound (either).
read_run() {
    local name=$1 json=$2 wpid wdur
    start "$name"
    load --connections "$CONNS" --keys "$READ_KEYS" --mix put=1 --key-dist sequential \
        --requests "$READ_KEYS" --warmup 0s --pipeline 16 >/dev/null
    # The writer covers the reader's warm-up and window with a second to spare.
    wdur=$(awk -v w="${WARMUP%s}" -v d="${READ_DURATION%s}" 'BEGIN { print w + d + 2 "s" }')
    load --connections "$CONNS" --keys "$WRITE_KEYS" --mix put=1 --pipeline 16 \
        --rate "$WRITE_RATE" --duration "$wdur" --warmup 0s --json "$json.w" \
        >/dev/null 2>"$json.w.err" &
    wpid=$!
    PIDS+=("$wpid")
    sleep 1
    load --connections "$READ_CONNS" --keys "$READ_KEYS" --mix get=1 --rate "$READ_RATE" \
        --duration "$READ_DURATION" --warmup "$WARMUP" --json "$json" >/dev/null || true
    wait "$wpid" || true
    stop
    LINE=$(jq -r -s '.[0] as $r | .[1] as $w |
        [ $r.latency_us.p50, $r.latency_us.p99, $r.latency_us.p999 // "-", $r.misses,
          $r.throughput_ops_per_sec, $w.throughput_ops_per_sec,
          ($r.client_bound or $w.client_bound or $r.errors > 0 or $w.errors > 0) ] | @tsv' \
        "$json" "$json.w")
}
if has_part 3; then
    if [[ -z $WRITE_RATE ]]; then
        if [[ -n ${RESULT[sb-always,p1]:-} ]]; then
            WRITE_RATE=$(awk -v t="$(col sb-always,p1 1)" 'BEGIN { printf "%d", t / 2 }')
        else
            WRITE_RATE=20000
        fi
    fi
    echo "GETs beside writers at $WRITE_RATE PUT/s, reads at $READ_RATE/s, $READ_REPEAT rounds..." >&2
    declare -A runs=()
    for i in $(seq 1 "$READ_REPEAT"); do
        for name in sb-always sb-mem; do
            over_budget && { echo "durable.sh: time budget spent, skipping $name" >&2; continue; }
            read_run "$name" "$WORK/$name-read-$i.json"
            echo "  round $i $name: $LINE" >&2
            runs[$name]+="$LINE"$'\n'
        done
    done
    for name in sb-always sb-mem; do
        [[ -n ${runs[$name]:-} ]] && RESULT[$name,read]=$(median_by 2 "${runs[$name]}")
    done
    unset runs
fi

# Part 4: recovery.
# timed_start NAME DIR: starts switchboard on DIR; sets SECS, the seconds from exec to
# its "listening on" line (each stdout line is stamped as it arrives), and ADDR, PID.
timed_start() {
    local name=$1 t0 t1 i
    : >"$WORK/$name.out"
    t0=$EPOCHREALTIME
    "$SB" --listen 127.0.0.1:0 "${worker_args[@]}" --data-dir "$2" --fsync always \
        2>>"$WORK/$name.err" \
        > >(while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done \
            >>"$WORK/$name.out") &
    PID=$!
    PIDS+=("$PID")
    DIR=$2
    for i in $(seq 1 1200); do
        t1=$(awk '$2 == "listening" { print $1; exit }' "$WORK/$name.out")
        [[ -n $t1 ]] && break
        ((i % 20)) || kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n $t1 ]] || { echo "durable.sh: $name did not start" >&2; exit 1; }
    ADDR=$(awk '$2 == "listening" { print $4; exit }' "$WORK/$name.out")
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}
RECOVERY=()
if has_part 4 && ! over_budget; then
    echo "recovery: writing $RECOVERY_RECORDS records $RECOVERY_PASSES time(s)..." >&2
    start sb-always
    rdir=$DIR
    t0=$SECONDS
    for pass in $(seq 1 "$RECOVERY_PASSES"); do
        load --connections "$CONNS" --keys "$RECOVERY_RECORDS" --mix put=1 --key-dist sequential \
            --requests "$RECOVERY_RECORDS" --warmup 0s --pipeline 16 >/dev/null
    done
    # A compaction runs in the background once the log is past its thresholds: wait
    # (bounded) for the one the passes started, so the restarts load its snapshot.
    if ((RECOVERY_PASSES > 1)); then
        for i in $(seq 1 600); do
            done_compactions=$(sb_stat log_compactions)
            ((${done_compactions:-0} > 0)) && break
            sleep 0.1
        done
    fi
    log_bytes=$(sb_stat log_bytes)
    compactions=$(sb_stat log_compactions)
    snapshot_bytes=$(sb_stat snapshot_bytes)
    echo "  written in $((SECONDS - t0)) s; log $log_bytes bytes; $compactions compaction(s)" >&2
    stop keep
    for i in $(seq 1 "$((2 * RECOVERY_REPEAT))"); do
        over_budget && break
        cache=warm
        if ((i % 2 == 0)); then
            cache=cold
            sync
            find "$rdir" -type f -exec dd if={} iflag=nocache count=0 status=none \;
        fi
        timed_start recovery "$rdir"
        secs=$SECS
        recovered=$(sb_stat recovered_changes)
        server_us=$(sb_stat recovery_us)
        stop keep
        echo "  restart $i ($cache): listening after $secs s; server: $recovered changes in $server_us us" >&2
        RECOVERY+=("$cache"$'\t'"$secs"$'\t'"$server_us"$'\t'"$recovered")
    done
    rm -rf "$rdir"
fi

# The report.
printf '\nswitchboard-load, %s connections, %s-byte values, median of %s x %s (+%s warm-up)\n' \
    "$CONNS" "$VALUE" "$REPEAT" "$DURATION" "$WARMUP"
printf 'data on %s (%s), 128-byte O_DSYNC append %s us; %s\n' \
    "$device" "$fstype" "$dsync_us" "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
if ((${#PUT_SERVERS[@]})); then
    printf '\n%-6s %-15s %10s %9s %9s %10s %9s %9s\n' shape server "PUT/s" "p50 us" "p99 us" \
        "srv us/req" "chg/sync" "sync us"
    for pipe in 1 16; do
        for name in "${PUT_SERVERS[@]}"; do
            row=${RESULT[$name,p$pipe]:-}
            [[ -n $row ]] || continue
            IFS=$'\t' read -r tput p50 p99 cpu bound ps su <<<"$row"
            note=""
            [[ $bound == true ]] && note=" (client-bound or errors)"
            printf '%-6s %-15s %10.0f %9.1f %9.1f %10.2f %9s %9s%s\n' "p$pipe" "$name" \
                "$tput" "$p50" "$p99" "$cpu" "$ps" "$su" "$note"
        done
    done
fi
printf '\n%-58s %8s  %-8s %s\n' "comparison" ratio target verdict
report() { # report LABEL RATIO OP LIMIT
    printf '%-58s %8s  %-8s %s\n' "$1" "$2" "$3 $4" "$(verdict "$2" "$3" "$4")"
}
for pipe in 1 16; do
    lim=1.3
    ((pipe == 16)) && lim=1.5
    if has_part 1; then
        report "p$pipe PUT/s: sb --fsync always / redis always" \
            "$(ratio "$(col sb-always,p$pipe 1)" "$(col redis-always,p$pipe 1)")" ">=" "$lim"
        report "p$pipe CPU/PUT: sb always / redis always (lower is better)" \
            "$(ratio "$(col sb-always,p$pipe 4)" "$(col redis-always,p$pipe 4)")" "" ""
    fi
    if has_part 2; then
        report "p$pipe PUT/s: sb --fsync everysec / sb in memory" \
            "$(ratio "$(col sb-everysec,p$pipe 1)" "$(col sb-mem,p$pipe 1)")" ">=" 0.85
        report "p$pipe PUT/s: sb everysec / redis everysec (reference)" \
            "$(ratio "$(col sb-everysec,p$pipe 1)" "$(col redis-everysec,p$pipe 1)")" "" ""
    fi
done
if [[ -n ${RESULT[sb-always,read]:-} ]]; then
    printf '\nGETs at %s/s (%s connections) beside PUTs at %s/s (%s connections, pipeline 16)\n' \
        "$READ_RATE" "$READ_CONNS" "$WRITE_RATE" "$CONNS"
    printf '%-15s %9s %9s %9s %7s %9s %9s\n' server "p50 us" "p99 us" "p999 us" misses \
        "GET/s" "PUT/s"
    for name in sb-always sb-mem; do
        row=${RESULT[$name,read]:-}
        [[ -n $row ]] || continue
        IFS=$'\t' read -r p50 p99 p999 misses rt wt bound <<<"$row"
        note=""
        [[ $bound == true ]] && note=" (client-bound or errors)"
        printf '%-15s %9.1f %9.1f %9s %7s %9.0f %9.0f%s\n' "$name" "$p50" "$p99" "$p999" \
            "$misses" "$rt" "$wt" "$note"
    done
    report "GET p99 beside writers: --fsync always / in memory" \
        "$(ratio "$(col sb-always,read 2)" "$(col sb-mem,read 2)")" "<=" 1.2
fi
if ((${#RECOVERY[@]})); then
    printf '\nrecovery of %s records (%s-byte values, written %s times; snapshot %s bytes, log %s bytes)\n' \
        "$RECOVERY_RECORDS" "$VALUE" "$RECOVERY_PASSES" "${snapshot_bytes:-0}" "$log_bytes"
    printf '%-6s %12s %16s %12s\n' cache "to listen s" "server recovery s" "log changes"
    worst=0
    all=""
    for r in "${RECOVERY[@]}"; do
        IFS=$'\t' read -r cache secs us n <<<"$r"
        printf '%-6s %12s %16.3f %12s\n' "$cache" "$secs" "$(awk -v u="$us" 'BEGIN { print u / 1e6 }')" "$n"
        worst=$(awk -v a="$worst" -v b="$secs" 'BEGIN { print (b > a) ? b : a }')
        all+="$secs"$'\n'
    done
    report "recovery, start to listening, median of the restarts (s)" "$(median_by 1 "$all")" "<" 1.5
    report "recovery, start to listening, worst of the restarts (s)" "$worst" "<" 1.5
fi
echo "(whole script: $((SECONDS - START_S)) s)"
