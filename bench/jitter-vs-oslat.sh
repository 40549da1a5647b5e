#!/usr/bin/env bash
# Compares `nearnative probe jitter` with its peers on one CPU, alternating runs:
#   spin mode  vs oslat      (busy loop reading the clock; gaps above 2 µs, max gap)
#   timer mode vs cyclictest (1 ms periodic wake-ups at SCHED_FIFO 80; average/max lateness)
# Usage: bench/jitter-vs-oslat.sh [CPU] [SECONDS] [ROUNDS]   (root; needs rt-tests and jq)
# Prints one line per run, then the median of each column and the ratio nearnative/peer.
set -euo pipefail

cpu=${1:-$(awk -F'[-,]' '{print $NF}' /sys/devices/system/cpu/online)}
secs=${2:-10}
rounds=${3:-3}
bin=${NEARNATIVE:-target/release/nearnative}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

[ -x "$bin" ] || cargo build --release --quiet -p nearnative

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

main_cpu=$(( cpu == 0 ? 1 : 0 ))
echo "# $(date -u +%F) $(uname -r) cpu=$cpu ${secs}s x $rounds rounds"
echo "# run        gaps>2us/s   max_gap_us | timer: avg_us    max_us"
for round in $(seq "$rounds"); do
    oslat -c "$cpu" -C "$main_cpu" -D "$secs" -q --json="$tmp/json.oslat" >/dev/null
    # oslat's bucket k counts loop iterations of [k-1, k) us (its 30 ns loop lands in bucket 1),
    # so buckets 3 and up are the gaps of 2 us or more that --threshold-ns 2000 counts.
    jq -r --argjson s "$secs" '.thread[] | [([.histogram | to_entries[]
        | select((.key|tonumber) >= 3) | .value] | add) / $s, .max] | @tsv' "$tmp/json.oslat" \
        >"$tmp/oslat.$round"
    "$bin" probe jitter --cpus "$cpu" --duration "$secs" --threshold-ns 2000 --json \
        | jq -r '.cpus[0] | [.interruptions_per_sec, .max_gap_ns / 1000] | @tsv' >"$tmp/nn.$round"

    # Both at SCHED_FIFO 80 (no timer slack); --laptop keeps cyclictest from holding
    # /dev/cpu_dma_latency at 0, which the probe does not do either.
    cyclictest -t1 -p 80 --laptop -a "$cpu" -i 1000 -D "$secs" -q --json="$tmp/json.cyc" >/dev/null
    jq -r '.thread[] | [.avg, .max] | @tsv' "$tmp/json.cyc" >"$tmp/cyc.$round"
    "$bin" probe jitter --mode timer --rt 80 --cpus "$cpu" --duration "$secs" --interval-us 1000 --json \
        | jq -r '.cpus[0] | [.lateness.mean / 1000, .max_lateness_ns / 1000] | @tsv' \
        >"$tmp/nnt.$round"

    printf 'oslat      %s | cyclictest %s\n' "$(cat "$tmp/oslat.$round")" "$(cat "$tmp/cyc.$round")"
    printf 'nearnative %s | nearnative %s\n' "$(cat "$tmp/nn.$round")" "$(cat "$tmp/nnt.$round")"
done

column_median() { cat "$tmp"/"$1".* | cut -f"$2" | median; }
echo "# medians                 peer        nearnative   ratio"
report() {
    local peer nn
    peer=$(column_median "$2" "$4")
    nn=$(column_median "$3" "$4")
    awk -v l="$1" -v p="$peer" -v n="$nn" \
        'BEGIN {printf "%-22s %10.2f  %10.2f  %6.2f\n", l, p, n, (p ? n / p : 0)}'
}
report "gaps>2us per s"  oslat nn 1
report "max gap us"      oslat nn 2
report "timer avg us"    cyc   nnt 1
report "timer max us"    cyc   nnt 2
