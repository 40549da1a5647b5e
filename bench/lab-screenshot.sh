#!/usr/bin/env bash
# Runs the real experiment (`nearnative lab --quick` unless other lab arguments are given) and
# screenshots its HTML report with headless chromium, to check by eye that it reads well with
# real data. (bench/lab-report-screenshot.sh does the same for the synthetic sample, which a
# test also checks automatically.)
#
# Usage: bench/lab-screenshot.sh [OUT_DIR] [LAB ARGS...]   (default target/lab-run; needs root,
# iproute2, chromium). Writes OUT_DIR/nearnative-lab.html, .txt (the table) and .png (1200x2400).
set -euo pipefail
cd "$(dirname "$0")/.."

out="$(realpath -m "${1:-target/lab-run}")"
shift || true
lab_args=("$@")
[ ${#lab_args[@]} -eq 0 ] && lab_args=(--quick)
mkdir -p "$out"
cargo build --release -q -p nearnative
state="$(mktemp -d)"
profile="$(mktemp -d)"
trap 'rm -rf "$state" "$profile"' EXIT
./target/release/nearnative lab "${lab_args[@]}" --state-dir "$state/state" \
    --run-dir "$state/run" --html "$out/nearnative-lab.html" | tee "$out/nearnative-lab.txt"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile" --window-size=1200,2400 \
    --screenshot="$out/nearnative-lab.png" "file://$out/nearnative-lab.html" 2>/dev/null
ls -l "$out"/nearnative-lab.*
