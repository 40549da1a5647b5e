# Sourced by the bench scripts: timing two commands side by side.
#
# medians_ms RUNS WARMUP NAME_A CMD_A NAME_B CMD_B prints the median wall time of each command
# in ms, one per line, A first. It uses hyperfine (-N, alternating in one session) when it is
# installed (apt-get install -y hyperfine), else a plain timing loop.

medians_ms() {
    local runs=$1 warmup=$2 name_a=$3 cmd_a=$4 name_b=$5 cmd_b=$6 json
    if command -v hyperfine >/dev/null; then
        json=$(mktemp)
        hyperfine -N --warmup "$warmup" --runs "$runs" --export-json "$json" \
            -n "$name_a" "$cmd_a" -n "$name_b" "$cmd_b" >/dev/null 2>&1
        grep -o '"median": [0-9.e-]*' "$json" | awk '{printf "%.2f\n", $2 * 1000}'
        rm -f "$json"
    else
        loop_median_ms "$runs" "$cmd_a"
        loop_median_ms "$runs" "$cmd_b"
    fi
}

loop_median_ms() {
    local runs=$1 cmd=$2 times=() start end
    for _ in $(seq "$runs"); do
        start=$(date +%s%N); $cmd >/dev/null; end=$(date +%s%N)
        times+=("$(( (end - start) / 1000 ))")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f\n", a[int((NR+1)/2)] / 1000}'
}
