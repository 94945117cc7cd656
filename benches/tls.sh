#!/usr/bin/env bash
# switchboard over TLS against Redis over TLS, both driven by switchboard-load with
# the same certificate and the same flags.
#
# Makes a CA and a localhost certificate with openssl, starts switchboard (--workers 0
# and 1) with --tls-cert/--tls-key and redis-server with --tls-port (--port 0,
# --tls-auth-clients no), preloads KEYS keys on each, then measures GET at pipeline 16
# and 1 (CONNECTIONS connections, VALUE-byte values), REPEAT runs per server
# round-robin, keeping the median. Server CPU per request comes from /proc/PID/stat
# (user+system ticks) before and after each run. Then new TLS connections per second
# (examples/tls_connect_rate: connect, handshake, one PING, close; full handshakes and
# resumed ones) with the server's CPU per connection.
#
# Usage: benches/tls.sh            (about 2 minutes)
# Environment: DURATION=3s WARMUP=1s REPEAT=3 CONNECTIONS=50 KEYS=100000 VALUE=64
#              THREADS=2 CONNECT_SECONDS=3
#
# The generator runs two threads by default: decrypting and checking every answer
# costs it about 0.7 us per GET, so one thread tops out near 550k GETs/s over TLS,
# below what switchboard serves, and the comparison would measure the generator.
#
# Never installs anything. Needs: redis-server (6 or later, built with TLS, as
# Debian's is), openssl, jq.
set -euo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-3s}
WARMUP=${WARMUP:-1s}
REPEAT=${REPEAT:-3}
CONNECTIONS=${CONNECTIONS:-50}
KEYS=${KEYS:-100000}
VALUE=${VALUE:-64}
CONNECT_SECONDS=${CONNECT_SECONDS:-3}
THREADS=${THREADS:-2}

for tool in redis-server openssl jq; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "tls.sh: missing $tool (apt-get install redis-server openssl jq)" >&2
        exit 1
    fi
done

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

echo "building release binaries..." >&2
cargo build --release --quiet --workspace --bin switchboard --bin switchboard-load --example tls_connect_rate
LOAD=target/release/switchboard-load
RATE=target/release/examples/tls_connect_rate
TCK=$(getconf CLK_TCK)

# A CA, and a certificate it signed for localhost and 127.0.0.1 (ECDSA P-256).
(
    cd "$WORK"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
        -out ca.pem -days 2 -subj "/CN=tls.sh CA" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
        -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out server.pem -days 2 -extfile ext.cnf 2>/dev/null
)
CA=$WORK/ca.pem CERT=$WORK/server.pem KEY=$WORK/server.key

free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "tls.sh: no free port found" >&2
    exit 1
}

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "tls.sh: nothing listens on port $1 after 10 s" >&2
    exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

declare -A ADDRS PIDOF PROTO
SERVERS=(switchboard-w0 switchboard-w1 redis)
for w in 0 1; do
    port=$(free_port)
    target/release/switchboard --listen "127.0.0.1:$port" --workers "$w" \
        --tls-cert "$CERT" --tls-key "$KEY" >"$WORK/sb$w.out" 2>"$WORK/sb$w.err" &
    PIDS+=($!)
    PIDOF[switchboard-w$w]=$! ADDRS[switchboard-w$w]=127.0.0.1:$port
    PROTO[switchboard-w$w]=switchboard
    wait_port "$port"
done
port=$(free_port)
redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 --tls-cert-file "$CERT" \
    --tls-key-file "$KEY" --tls-ca-cert-file "$CA" --tls-auth-clients no --save '' \
    --appendonly no --protected-mode no --daemonize no >"$WORK/redis.out" 2>&1 &
PIDS+=($!)
PIDOF[redis]=$! ADDRS[redis]=127.0.0.1:$port PROTO[redis]=resp
wait_port "$port"

load() {
    local server=$1
    shift
    timeout 60 "$LOAD" --addr "${ADDRS[$server]}" --protocol "${PROTO[$server]}" \
        --tls-ca "$CA" --tls-server-name localhost --connections "$CONNECTIONS" \
        --threads "$THREADS" \
        --keys "$KEYS" --value-size "$VALUE" --quiet "$@"
}

for server in "${SERVERS[@]}"; do
    load "$server" --mix put=1 --key-dist sequential --requests "$KEYS" --warmup 0s \
        --pipeline 16 >/dev/null
done

# One run: "throughput p50 p99 server_cpu_us_per_req" from the JSON.
one_run() {
    local server=$1 json=$2 pipeline=$3 before after
    before=$(cpu_ticks "${PIDOF[$server]}")
    load "$server" --mix get=1 --pipeline "$pipeline" --duration "$DURATION" \
        --warmup "$WARMUP" --json "$json" >/dev/null
    after=$(cpu_ticks "${PIDOF[$server]}")
    jq -r --argjson ticks $((after - before)) --argjson tck "$TCK" '
        if .errors > 0 or .misses > 0 then error("errors or misses: \(.errors) \(.misses)") else . end
        | [ .throughput_ops_per_sec, .latency_us.p50, .latency_us.p99,
            $ticks * 1e6 / $tck / .answered_total ] | @tsv' "$json"
}

median() { sort -g | awk '{ v[NR] = $0 } END { print v[int((NR + 1) / 2)] }'; }

echo
echo "GET over TLS: $CONNECTIONS connections ($THREADS generator threads), $VALUE-byte values, $KEYS keys, median of $REPEAT x $DURATION"
printf '%-16s %-9s %14s %10s %10s %16s\n' server pipeline ops/s p50_us p99_us server_us/req
declare -A TPUT
for pipeline in 16 1; do
    declare -A ROWS=()
    for r in $(seq 1 "$REPEAT"); do
        for server in "${SERVERS[@]}"; do
            ROWS[$server]+="$(one_run "$server" "$WORK/run.json" "$pipeline")"$'\n'
        done
    done
    for server in "${SERVERS[@]}"; do
        # The median run by throughput, reported whole.
        row=$(printf '%s' "${ROWS[$server]}" | sort -g -k1,1 |
            awk '{ v[NR] = $0 } END { print v[int((NR + 1) / 2)] }')
        read -r tput p50 p99 cpu <<<"$row"
        TPUT[$server-$pipeline]=$tput
        printf '%-16s %-9s %14.0f %10.1f %10.1f %16.2f\n' "$server" "$pipeline" "$tput" "$p50" "$p99" "$cpu"
    done
done
for w in 0 1; do
    awk -v a="${TPUT[switchboard-w$w-16]}" -v b="${TPUT[redis-16]}" -v w="$w" \
        'BEGIN { printf "switchboard-w%s / redis at pipeline 16: %.2fx\n", w, a / b }'
done

echo
echo "New TLS connections per second (one client thread: connect, handshake, PING, close)"
printf '%-16s %-10s %12s %10s %18s\n' server handshake conn/s resumed server_us/conn
for server in switchboard-w0 redis; do
    for kind in full resumed; do
        flags=()
        [[ $kind == resumed ]] && flags+=(--resume)
        [[ ${PROTO[$server]} == resp ]] && flags+=(--resp)
        before=$(cpu_ticks "${PIDOF[$server]}")
        out=$("$RATE" "${ADDRS[$server]}" "$CA" "$CONNECT_SECONDS" "${flags[@]}")
        after=$(cpu_ticks "${PIDOF[$server]}")
        # "N connections in T s: R per second, M resumed"
        read -r n _ _ _ _ rate _ _ resumed _ <<<"$out"
        awk -v s="$server" -v k="$kind" -v n="$n" -v r="$rate" -v m="$resumed" \
            -v ticks=$((after - before)) -v tck="$TCK" \
            'BEGIN { printf "%-16s %-10s %12s %10s %18.1f\n", s, k, r, m, ticks * 1e6 / tck / n }'
    done
done
