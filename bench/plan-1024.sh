#!/usr/bin/env bash
# The allocator's speed: 500 workloads admitted one after another on a synthetic 1024-CPU host
# (4 packages x 2 nodes x 64 cores x 2 threads), ROUNDS times (default 3), each run printing
# the median of 21 rounds for a batch session and for one-shot allocation.
# Then the whole planner: 500 fake VMs in a Host on the same topology, each planned in turn
# (bench plan: the batch and the last plan alone, medians of 7 and 21 rounds).
# Usage: bench/plan-1024.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
cargo bench -q -p nearnative-plan --bench allocate --no-run
cargo bench -q -p nearnative-plan --bench plan --no-run
for _ in $(seq "$rounds"); do
    cargo bench -q -p nearnative-plan --bench allocate 2>/dev/null | grep '^plan '
done
for _ in $(seq "$rounds"); do
    cargo bench -q -p nearnative-plan --bench plan 2>/dev/null | grep '^plan '
done
