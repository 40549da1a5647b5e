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
source bench/lib/medians.sh

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

mapfile -t medians < <(medians_ms "$runs" 5 inspect "$inspect_cmd" hwloc-calc "$hwloc_cmd")
echo "median ms: inspect ${medians[0]}, hwloc-calc ${medians[1]} ($runs runs each)"
awk -v a="${medians[0]}" -v b="${medians[1]}" 'BEGIN {printf "inspect / hwloc-calc = %.2f (below 1 means inspect is faster)\n", a / b}'
