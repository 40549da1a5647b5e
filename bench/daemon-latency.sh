#!/usr/bin/env bash
# Acceptance 8 of issue 10: how fast `nearnative daemon` makes a starting VM latency-sensitive,
# and what it costs while idle. Run as root on the machine under test, nothing else running
# under /tmp/nearnative-live.lock:
#
#   flock /tmp/nearnative-live.lock bench/daemon-latency.sh [CYCLES]   (default 200)
#
# Each cycle starts a real paused QEMU (one vCPU, debug-threads=on, `-name guest=nn-b-N`)
# inside a v1 cpuset cgroup of the script's own, which a private daemon (its own state and
# policy directories, control socket, metrics off, 10 s sweep) keeps to with the policy
# `target = "vm:nn-b-*"`; then it kills the VM and waits until the daemon has released it.
#
# Latency, per cycle: from just before QEMU's exec (the nanosecond clock read by the shell
# that then execs QEMU inside the cgroup) to the moment the apply finished (the modification
# time of the workload's journal, whose last record the apply appends when every change is
# made). It includes QEMU's own start-up up to its vCPU thread, which the daemon must wait
# for. Also, per cycle, from the creation of the VM's last vCPU thread to the apply, as the
# daemon logs it ("..., 31 ms after its last vCPU thread started": the thread's start time,
# in clock ticks since boot, against CLOCK_BOOTTIME after the apply, so at most one tick,
# 10 ms, over the truth). Printed for each: p50, p99 and max over the cycles.
#
# Idle cost: the daemon's user + system CPU time (/proc/PID/stat, fields 14 and 15) over 60 s
# with nothing starting or stopping, as a percentage of one CPU.
#
# NEARNATIVE names the binary (default: target/release/nearnative, then target/debug).
set -euo pipefail

cycles=${1:-200}
bin=${NEARNATIVE:-}
if [[ -z $bin ]]; then
    for candidate in target/release/nearnative target/debug/nearnative; do
        [[ -x $candidate ]] && bin=$candidate && break
    done
fi
[[ -x $bin ]] || { echo "daemon-latency: build nearnative first (cargo build --release)" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "daemon-latency: run as root" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "daemon-latency: needs qemu-system-x86" >&2; exit 2; }

cpuset=/sys/fs/cgroup/cpuset
scope=nn-bench-$$
work=$(mktemp -d /tmp/nn-bench.XXXXXX)
state=$work/state
daemon=
qemu=

cleanup() {
    [[ -n $qemu ]] && kill -9 "$qemu" 2>/dev/null || true
    [[ -n $daemon ]] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
    "$bin" revert --all --state-dir "$state" >/dev/null 2>&1 || true
    for _ in $(seq 100); do rmdir "$cpuset/$scope" 2>/dev/null && break; sleep 0.05; done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir "$cpuset/$scope"
cat "$cpuset/cpuset.cpus" >"$cpuset/$scope/cpuset.cpus"
cat "$cpuset/cpuset.mems" >"$cpuset/$scope/cpuset.mems"
mkdir "$work/policies"
printf '[[workload]]\ntarget = "vm:nn-b-*"\n' >"$work/policies/bench.toml"

"$bin" daemon --metrics off --sweep 10 --scope "cgroup:/$scope" \
    --policy-dir "$work/policies" --state-dir "$state" \
    --control-socket "$work/control.sock" 2>"$work/daemon.log" &
daemon=$!

# Waits until the daemon's log holds $2 lines matching $1 (5 ms polls, 20 s at most).
wait_for_lines() {
    local pattern=$1 count=$2
    for _ in $(seq 4000); do
        (( $(grep -c -- "$pattern" "$work/daemon.log" || true) >= count )) && return 0
        sleep 0.005
    done
    echo "daemon-latency: timed out waiting for '$pattern' #$count; log:" >&2
    tail -5 "$work/daemon.log" >&2
    exit 1
}

wait_for_lines "started on" 1
latencies=()
after_vcpu=()
for n in $(seq "$cycles"); do
    sh -c 'echo $$ >"$0/cgroup.procs" && date +%s%N >"$1/t0" && exec qemu-system-x86_64 \
        -enable-kvm -S -display none -M microvm -smp 1 -m 64 \
        -name "guest=nn-b-$2,debug-threads=on" -daemonize -pidfile "$1/qemu.pid"' \
        "$cpuset/$scope" "$work" "$n" 2>/dev/null
    qemu=$(cat "$work/qemu.pid")
    wait_for_lines " applied on CPUs " "$n"
    t0=$(cat "$work/t0")
    applied=$(stat -c %.9Y "$state"/journals/*)
    latencies+=("$(echo "($applied * 1000000000 - $t0) / 1000000" | bc -l)")
    line=$(grep -- " applied on CPUs " "$work/daemon.log" | sed -n "${n}p")
    vcpu_ms=$(sed -n 's/.*, \([0-9]*\) ms after its last vCPU thread started.*/\1/p' <<<"$line")
    [[ -n $vcpu_ms ]] || { echo "daemon-latency: no vCPU latency in: $line" >&2; exit 1; }
    after_vcpu+=("$vcpu_ms")
    kill -9 "$qemu"
    qemu=
    wait_for_lines " released (" "$n"
done

# p50, p99 and max of the values on stdin, in ms.
quantiles() {
    sort -g | awk '{ v[NR] = $1 }
        function at(q,  i) { i = int(q * NR + 0.999999); if (i < 1) i = 1; return v[i] }
        END { printf "p50 %.1f ms, p99 %.1f ms, max %.1f ms", at(0.50), at(0.99), at(1.0) }'
}
echo "exec to applied over $cycles cycles: $(printf '%s\n' "${latencies[@]}" | quantiles)"
echo "last vCPU thread to applied over $cycles cycles: $(printf '%s\n' "${after_vcpu[@]}" | quantiles)"

ticks() { awk '{ print $14 + $15 }' "/proc/$daemon/stat"; }
hz=$(getconf CLK_TCK)
before=$(ticks)
sleep 60
after=$(ticks)
echo "idle: $(echo "scale=3; ($after - $before) * 100 / ($hz * 60)" | bc) % of one CPU over 60 s"
echo "daemon log: $(grep -c . "$work/daemon.log") lines"
