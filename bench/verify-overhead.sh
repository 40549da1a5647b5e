#!/usr/bin/env bash
# What verify's sampler costs the host: CPU time of the sampling thread per second, and per
# polling round, with the host's own threads and with THREADS extra sleeping threads that
# may run on the sampled CPU (so every one of them is a candidate, polled every 10 ms).
# Peer: `top -H -b -d 0.01`, which also reads every thread's files each round: its CPU time
# per round, measured the same way, in the same session.
#
# Usage: bench/verify-overhead.sh [CPU] [SECONDS] [RUNS] [THREADS...]
#   CPU      the CPU to sample (default 1)
#   SECONDS  length of each sample (default 3)
#   RUNS     runs per configuration (default 5)
#   THREADS  extra sleeping threads per configuration (default: 0 1000 10000)
set -euo pipefail
cd "$(dirname "$0")/.."

cpu="${1:-1}"
seconds="${2:-3}"
runs="${3:-5}"
shift $(( $# < 3 ? $# : 3 ))
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(0 1000 10000)
command -v python3 >/dev/null || { echo "python3 missing" >&2; exit 2; }

cargo build --release -q -p nearnative-verify --examples
bin="$PWD/target/release/examples/sample_cost"
echo "date: $(date -u +%F), host: $(nproc) CPUs, kernel $(uname -r), load: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$bin" "$cpu" "$seconds" "$runs" "${configs[@]}" <<'PY'
import json, os, resource, statistics, subprocess, sys, threading, time

binary, cpu, seconds, runs = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
configs = [int(n) for n in sys.argv[5:]]
threading.stack_size(65536)

def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime

def top_us_per_round(iterations=50):
    before = children_cpu()
    subprocess.run(["top", "-H", "-b", "-d", "0.01", "-n", str(iterations)],
                   stdout=subprocess.DEVNULL, check=True)
    return (children_cpu() - before) / iterations * 1e6

print("| extra threads | threads listed | candidates | sampler CPU ms/s | sampler µs/round "
      "| top -H µs/round | ratio | longest poll period ms |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
stop = threading.Event()
started = 0
for extra in configs:
    while started < extra:
        threading.Thread(target=stop.wait, daemon=True).start()
        started += 1
    ours, peer = [], []
    for _ in range(runs):
        out = subprocess.run([binary, cpu, str(seconds)], capture_output=True, text=True, check=True)
        ours.append(json.loads(out.stdout))
        peer.append(top_us_per_round())
    med = lambda key: statistics.median(r[key] for r in ours)
    peer_med = statistics.median(peer)
    print(f"| {extra} | {med('threads_listed'):.0f} | {med('candidates'):.0f} "
          f"| {med('cpu_ms_per_s'):.1f} | {med('us_per_round'):.0f} | {peer_med:.0f} "
          f"| {med('us_per_round') / peer_med:.2f} | {med('longest_poll_period_ns') / 1e6:.1f} |",
          flush=True)
stop.set()
PY
