#!/usr/bin/env bash
# inspect on a live host with many threads: `nearnative inspect --json` (every thread's stat and
# status, every process's cgroup and command line, the VMs) against the peer
# `ps -eLo pid,tid,psr,cls,rtprio,ni,comm` (every thread's stat and status), medians and ratio.
#
# Usage: bench/inspect-tasks.sh [THREADS] [RUNS]
#   THREADS  extra sleeping threads to start in one helper process (default 10000)
#   RUNS     runs per command (default 20)
# Uses hyperfine when installed (apt-get install -y hyperfine), else a timing loop.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib/medians.sh

threads="${1:-10000}"
runs="${2:-20}"
command -v python3 >/dev/null || { echo "python3 missing" >&2; exit 2; }

cargo build --release -q -p nearnative
bin="$PWD/target/release/nearnative"
work="$(mktemp -d)"

# One process holding THREADS threads that sleep until it is killed.
python3 - "$threads" >"$work/ready" <<'PY' &
import sys, threading, time
threading.stack_size(65536)
stop = threading.Event()
for _ in range(int(sys.argv[1])):
    threading.Thread(target=stop.wait, daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
PY
helper=$!
trap 'kill "$helper" 2>/dev/null; rm -rf "$work"' EXIT
until grep -qs ready "$work/ready"; do
    kill -0 "$helper" 2>/dev/null || { echo "the thread helper failed (thread limit?)" >&2; exit 2; }
    sleep 0.1
done

inspect_cmd="$bin inspect --json"
ps_cmd="ps -eLo pid,tid,psr,cls,rtprio,ni,comm"
echo "host: $(nproc) CPUs, $(ps -eLo tid= | wc -l) threads in $(ps -eo pid= | wc -l) processes"

mapfile -t medians < <(medians_ms "$runs" 2 inspect "$inspect_cmd" ps "$ps_cmd")
echo "median ms: inspect ${medians[0]}, ps ${medians[1]} ($runs runs each)"
awk -v a="${medians[0]}" -v b="${medians[1]}" 'BEGIN {printf "inspect / ps = %.2f (below 1 means inspect is faster)\n", a / b}'
