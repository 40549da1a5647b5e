#!/usr/bin/env bash
# Closed-loop UDP RTT across every lab path (host loopback, veth, veth + bridge, tap + user-space
# forwarder), quiet and with the noisy neighbour (a hog per CPU + a 50 000/s UDP flood over a
# veth pair of its own), client pinned to the first CPU and server to the last. Prints every
# run's rows, then the median per condition and layer of p50, p99 and the p50 ratio to loopback.
#
# Usage: bench/lab-paths.sh [ROUND_TRIPS] [RUNS]     (defaults 20000 and 3; needs root, iproute2)
set -euo pipefail
cd "$(dirname "$0")/.."

round_trips="${1:-20000}"
runs="${2:-3}"
cargo build --release -q -p nearnative-lab --example lab_paths
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for run in $(seq "$runs"); do
    ./target/release/examples/lab_paths "$round_trips" | tee "$work/run$run.tsv"
done

echo
echo "median of $runs runs of $round_trips round trips:"
printf 'condition\tlayer\tp50_ns\tp99_ns\tp50_vs_loopback\n'
cat "$work"/run*.tsv | awk -F'\t' 'NR > 1 && $1 != "condition" { print }' |
    sort -t$'\t' -k1,1 -k2,2 |
    awk -F'\t' '
        function median(list,   n, a, i, j, t) {
            n = split(list, a, " ")
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        { key = $1 "\t" $2; p50[key] = p50[key] " " $3; p99[key] = p99[key] " " $4; ratio[key] = ratio[key] " " $8
          if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
        END { for (i = 1; i <= n; i++) { k = order[i]; printf "%s\t%s\t%s\t%.2f\n", k, median(p50[k]), median(p99[k]), median(ratio[k]) } }'
