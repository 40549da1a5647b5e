#!/usr/bin/env bash
# apply and revert against many threads in the scope: a target process and a bystander
# holding THREADS sleeping threads sit in a v1 cpuset S that this script creates; then
# `nearnative apply pid:TARGET --scope cgroup:/S` and `nearnative revert pid:TARGET` are timed
# (each bystander thread gets an affinity and a cgroup, and both come back). The floor is the
# bare sched_setaffinity and `tasks` writes for the same threads (crates/apply/examples/
# thread_floor.rs), timed in the same run, and so is `nearnative inspect --json` alone (the
# reading of every /proc task that apply does first). Medians, per-thread cost and ratios.
#
# Usage: bench/apply-threads.sh [RUNS] [THREADS...]   (default 5 runs; 250 1000 4000 10000)
# Needs root and a v1 cpuset at /sys/fs/cgroup/cpuset. Changes only what it creates.
# Run it under the live lock: flock /tmp/nearnative-live.lock bench/apply-threads.sh
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-5}"
shift || true
counts=("${@:-}")
[[ -n "${counts[0]}" ]] || counts=(250 1000 4000 10000)
mount=/sys/fs/cgroup/cpuset
[[ $(id -u) == 0 ]] || { echo "needs root" >&2; exit 2; }
[[ -f $mount/cpuset.cpus ]] || { echo "no v1 cpuset at $mount" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 missing" >&2; exit 2; }

cargo build --release -q -p nearnative
# Its own target directory: an example builds the crate's dev-dependencies, which would turn on
# the test-only fault injection in the main build and rebuild it at every run.
cargo build --release -q -p nearnative-apply --example thread_floor --target-dir target/bench-floor
bin="$PWD/target/release/nearnative"
floor="$PWD/target/bench-floor/release/examples/thread_floor"

name="nn-bench-$$"
scope="$mount/$name"
work="$(mktemp -d)"
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -d $scope ]]; then
        find "$scope" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
        rmdir "$scope" || echo "!!! could not remove $scope" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

all_cpus=$(cat "$mount/cpuset.cpus")
hk_cpu=${all_cpus%%[-,]*}
mkdir "$scope" "$scope/floor-hk"
cat "$mount/cpuset.mems" >"$scope/cpuset.mems"
echo "$all_cpus" >"$scope/cpuset.cpus"
cat "$mount/cpuset.mems" >"$scope/floor-hk/cpuset.mems"
echo "$hk_cpu" >"$scope/floor-hk/cpuset.cpus"

# A process in S whose THREADS threads sleep until it is killed; prints its pid when ready.
start_bystander() {
    python3 - "$1" "$scope/cgroup.procs" <<'PY' &
import os, sys, threading, time
with open(sys.argv[2], "w") as procs:
    procs.write(str(os.getpid()))
threading.stack_size(65536)
stop = threading.Event()
for _ in range(int(sys.argv[1])):
    threading.Thread(target=stop.wait, daemon=True).start()
print("ready", flush=True)
time.sleep(3600)
PY
}

median() { sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]}'; }
ms_since() { echo "$(( ($(date +%s%N) - $1) / 1000 ))" | awk '{printf "%.1f", $1 / 1000}'; }

echo "host: $(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "threads" "apply ms" "revert ms" \
    "apply µs/thread" "revert µs/thread" "inspect ms" "floor apply ms" "floor revert ms" \
    "apply / floor" "revert / floor"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for threads in "${counts[@]}"; do
    sleep 3600 &
    target=$!
    pids+=("$target")
    echo "$target" >"$scope/cgroup.procs"
    start_bystander "$threads" >"$work/ready"
    bystander=$!
    pids+=("$bystander")
    until grep -qs ready "$work/ready"; do
        kill -0 "$bystander" 2>/dev/null || { echo "the thread helper failed (thread limit?)" >&2; exit 2; }
        sleep 0.1
    done
    in_scope=$(wc -l <"$scope/tasks")
    applies=() reverts=() inspects=() floor_applies=() floor_reverts=()
    for _ in $(seq "$runs"); do
        state="$work/state"
        start=$(date +%s%N)
        "$bin" inspect --json >/dev/null
        inspects+=("$(ms_since "$start")")
        start=$(date +%s%N)
        "$bin" apply "pid:$target" --scope "cgroup:/$name" --state-dir "$state" >"$work/apply.out"
        applies+=("$(ms_since "$start")")
        journal_bytes=$(cat "$state"/journals/*.json | wc -c)
        start=$(date +%s%N)
        "$bin" revert "pid:$target" --state-dir "$state" >/dev/null
        reverts+=("$(ms_since "$start")")
        rm -rf "$state"
        back=$(wc -l <"$scope/tasks")
        [[ $back == "$in_scope" ]] || { echo "after revert $back tasks in $scope, not $in_scope" >&2; exit 1; }
        read -r fa fr _ < <("$floor" "$bystander" "$scope/floor-hk" "$scope" "$hk_cpu" "$all_cpus")
        floor_applies+=("$fa")
        floor_reverts+=("$fr")
    done
    a=$(printf '%s\n' "${applies[@]}" | median)
    r=$(printf '%s\n' "${reverts[@]}" | median)
    fa=$(printf '%s\n' "${floor_applies[@]}" | median)
    fr=$(printf '%s\n' "${floor_reverts[@]}" | median)
    i=$(printf '%s\n' "${inspects[@]}" | median)
    awk -v n="$threads" -v a="$a" -v r="$r" -v i="$i" -v fa="$fa" -v fr="$fr" 'BEGIN {
        printf "| %d | %.0f | %.0f | %.1f | %.1f | %.0f | %.1f | %.1f | %.1f | %.1f |\n",
            n, a, r, a * 1000 / n, r * 1000 / n, i, fa, fr, a / fa, r / fr }'
    echo "  ($in_scope tasks in scope, journal $journal_bytes bytes; apply ms: ${applies[*]}; revert ms: ${reverts[*]})" >&2
    kill "$bystander" "$target"
    wait "$bystander" "$target" 2>/dev/null || true
    pids=()
done
