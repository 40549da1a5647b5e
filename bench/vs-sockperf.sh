#!/usr/bin/env bash
# nearnative probe rtt vs sockperf 3.7: p50 round-trip time over 127.0.0.1, 64-byte UDP,
# server on CPU 1 and client on CPU 0, with blocking waits and with spinning waits on both
# sides. The two tools run interleaved (the order alternates each round) so drift in the
# machine's state hits both alike; the script prints each run, the median per tool and wait,
# and the ratio nearnative/sockperf. A benchmark, not a test: it asserts nothing.
#
# sockperf prints half the RTT unless given --full-rtt, so it is run with --full-rtt and both
# columns are full round trips in µs. Its spinning mode is --nonblocked on both sides (a
# recvfrom loop on a non-blocking socket); its default is a blocking recvfrom.
#
# Usage: bench/vs-sockperf.sh [ROUNDS] [SECONDS]   (defaults: 5 rounds of 5 s per run)
# Needs: sockperf, taskset, a release build (built here if missing), 2 online CPUs.
set -euo pipefail

ROUNDS=${1:-5}
SECONDS_PER_RUN=${2:-5}
SERVER_CPU=1
CLIENT_CPU=0
SOCKPERF_PORT=11111
NEARNATIVE_PORT=7600
cd "$(dirname "$0")/.."
BIN=${NEARNATIVE:-target/release/nearnative}

[[ -x $BIN ]] || cargo build --release --quiet
command -v sockperf >/dev/null || { echo "sockperf is not installed" >&2; exit 2; }

server_pid=
stop_server() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap stop_server EXIT

# p50 RTT in µs from one sockperf ping-pong run; $1 is "block" or "spin".
sockperf_p50() {
    local flags=()
    [[ $1 == spin ]] && flags=(--nonblocked)
    taskset -c "$SERVER_CPU" sockperf server -i 127.0.0.1 -p "$SOCKPERF_PORT" "${flags[@]}" \
        >/dev/null 2>&1 &
    server_pid=$!
    sleep 0.5
    taskset -c "$CLIENT_CPU" sockperf ping-pong -i 127.0.0.1 -p "$SOCKPERF_PORT" -m 64 \
        -t "$SECONDS_PER_RUN" --full-rtt "${flags[@]}" 2>&1 |
        awk '/percentile 50.000/ { print $NF }'
    stop_server
}

# p50 RTT in µs from one nearnative run; $1 is "block" or "spin".
nearnative_p50() {
    "$BIN" probe rtt serve --bind "127.0.0.1:$NEARNATIVE_PORT" --cpu "$SERVER_CPU" --wait "$1" \
        >/dev/null 2>&1 &
    server_pid=$!
    sleep 0.5
    "$BIN" probe rtt "127.0.0.1:$NEARNATIVE_PORT" --cpu "$CLIENT_CPU" --wait "$1" --payload 64 \
        --warmup 400ms --duration "${SECONDS_PER_RUN}s" --json |
        awk '/"rtt_ns"/ { in_rtt = 1 } in_rtt && /"p50"/ { gsub(/[^0-9]/, "", $2); printf "%.3f\n", $2 / 1000; exit }'
    stop_server
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "# $(date -u +%F) $(uname -r), $(nproc) CPUs, $(sockperf --version 2>&1 | head -1)"
echo "# bench/vs-sockperf.sh $ROUNDS $SECONDS_PER_RUN: 127.0.0.1, UDP, 64 B, server CPU $SERVER_CPU, client CPU $CLIENT_CPU"
printf '%-6s %-6s %14s %14s\n' wait round sockperf_us nearnative_us
summary=()
for wait in block spin; do
    sp_runs=()
    nn_runs=()
    for ((round = 1; round <= ROUNDS; round++)); do
        if ((round % 2)); then
            sp=$(sockperf_p50 "$wait")
            nn=$(nearnative_p50 "$wait")
        else
            nn=$(nearnative_p50 "$wait")
            sp=$(sockperf_p50 "$wait")
        fi
        printf '%-6s %-6s %14s %14s\n' "$wait" "$round" "$sp" "$nn"
        sp_runs+=("$sp")
        nn_runs+=("$nn")
    done
    sp_median=$(printf '%s\n' "${sp_runs[@]}" | median)
    nn_median=$(printf '%s\n' "${nn_runs[@]}" | median)
    ratio=$(awk -v a="$nn_median" -v b="$sp_median" 'BEGIN { printf "%.3f", a / b }')
    summary+=("$(printf '%-6s %14s %14s %8s' "$wait" "$sp_median" "$nn_median" "$ratio")")
done
echo
printf '%-6s %14s %14s %8s\n' wait sockperf_p50 nearnative_p50 ratio
printf '%s\n' "${summary[@]}"
