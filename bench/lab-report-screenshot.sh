#!/usr/bin/env bash
# Renders the lab report's HTML for the synthetic sample report (every path, quiet and noisy,
# default and latency-sensitive) and screenshots it with headless chromium, to look at by eye.
# The same test checks the screenshot automatically (distinct colours, both curve colours).
#
# Usage: bench/lab-report-screenshot.sh [OUT_DIR]    (default target/lab-report; needs chromium)
# Writes OUT_DIR/lab-report.html, OUT_DIR/lab-report.png (1200x2000, what the test checks) and
# OUT_DIR/lab-report-full.png (1200x3400, the whole page).
set -euo pipefail
cd "$(dirname "$0")/.."

out="$(realpath -m "${1:-target/lab-report}")"
mkdir -p "$out"
NEARNATIVE_REPORT_SHOT_DIR="$out" cargo test --release -q -p nearnative-lab --test tests \
    report::chromium::report_renders_legibly_needs_chromium

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$profile" --window-size=1200,3400 \
    --screenshot="$out/lab-report-full.png" "file://$out/lab-report.html" 2>/dev/null
ls -l "$out"/lab-report.html "$out"/lab-report*.png
