#!/usr/bin/env bash
# inspect vs hwloc on the same snapshot: `nearnative inspect --json --root SNAP` against
# `hwloc-calc --number-of pu all` with HWLOC_FSROOT=SNAP, side by side, medians and ratio.
#
# Usage: bench/inspect-vs-hwloc.sh [SNAPSHOT-NAME] [RUNS]
#   SNAPSHOT-NAME  a shared/fixtures/hosts/*.tar.bz2 name (default 128arm-2pa2n8cluster4co)
#   RUNS           runs per command (default 50)
# Uses hyperfine when installed (apt-get install -y hyperfine), else a timing loop.
set -euo pipefail
cd "$(dirname "$0")/.."

name="${1:-128arm-2pa2n8cluster4co}"
runs="${2:-50}"
hosts=""
for dir in ../shared/fixtures/hosts ../../shared/fixtures/hosts; do
    [[ -f "$dir/$name.tar.bz2" ]] && hosts="$dir" && break
done
[[ -n "$hosts" ]] || { echo "no $name.tar.bz2 in shared/fixtures/hosts" >&2; exit 2; }
command -v hwloc-calc >/dev/null || { echo "hwloc-calc missing: apt-get install -y hwloc" >&2; exit 2; }

cargo build --release -q -p nearnative
bin="$PWD/target/release/nearnative"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar xjf "$hosts/$name.tar.bz2" -C "$work"
snap="$work/$name"

inspect_cmd="$bin inspect --json --root $snap"
hwloc_cmd="env HWLOC_FSROOT=$snap hwloc-calc --number-of pu all"
echo "snapshot: $name ($("$bin" inspect --json --root "$snap" | grep -c '"online": true') online CPUs; hwloc counts $(HWLOC_FSROOT="$snap" hwloc-calc --number-of pu all) PUs)"

if command -v hyperfine >/dev/null; then
    hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/h.json" \
        -n inspect "$inspect_cmd" -n hwloc-calc "$hwloc_cmd" >/dev/null 2>&1
    mapfile -t medians < <(grep -o '"median": [0-9.e-]*' "$work/h.json" | awk '{printf "%.2f\n", $2 * 1000}')
else
    median_ms() {
        local times=() start end
        for _ in $(seq "$runs"); do
            start=$(date +%s%N); $1 >/dev/null; end=$(date +%s%N)
            times+=("$(( (end - start) / 1000 ))")
        done
        printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f\n", a[int((NR+1)/2)] / 1000}'
    }
    medians=("$(median_ms "$inspect_cmd")" "$(median_ms "$hwloc_cmd")")
fi
echo "median ms: inspect ${medians[0]}, hwloc-calc ${medians[1]} ($runs runs each)"
awk -v a="${medians[0]}" -v b="${medians[1]}" 'BEGIN {printf "inspect / hwloc-calc = %.2f (below 1 means inspect is faster)\n", a / b}'
