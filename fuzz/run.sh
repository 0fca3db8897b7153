#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each and prints executions and
# findings per target, for this run and summed over all runs recorded in fuzz/logs/.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]      default 600 s per target
#   FUZZ_JOBS=3 bash fuzz/run.sh 600            run up to three targets at once
#   FUZZ_RUNS=10000000 bash fuzz/run.sh 3600     stop each target at 10 M executions
#                                               (or at the time budget, if sooner)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Seeds are regenerated first (`cargo run --example fuzz_seeds`); findings are left in
# fuzz/artifacts/<target>/ and make the script exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
all=(csr certify istio token ca_pem kube_objects config)
targets=("${@:-${all[@]}}")
jobs=${FUZZ_JOBS:-1}
runs=${FUZZ_RUNS:--1}
declare -A max_len=([csr]=8192 [certify]=8192 [istio]=12288 [token]=4096 [ca_pem]=16384 [kube_objects]=24576 [config]=4096)

nice -n 19 cargo run --quiet --example fuzz_seeds -- fuzz/corpus
(cd fuzz && nice -n 19 cargo +nightly fuzz build --sanitizer none 2>&1 | grep -v '^ *Compiling' || true)
bin=fuzz/target/x86_64-unknown-linux-gnu/release
mkdir -p fuzz/logs
stamp=$(date -u +%Y%m%dT%H%M%SZ)

run_one() {
    local t=$1 log="fuzz/logs/$t-$stamp.log"
    mkdir -p "fuzz/artifacts/$t"
    local before; before=$(find "fuzz/artifacts/$t" -type f | wc -l)
    set +e
    nice -n 19 "$bin/$t" "fuzz/corpus/$t" -max_total_time="$secs" -runs="$runs" -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len="${max_len[$t]:-4096}" \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
    local rc=$?
    set -e
    local execs; execs=$(awk '/stat::number_of_executed_units/ {n=$NF} END {print n+0}' "$log")
    local found=$(( $(find "fuzz/artifacts/$t" -type f | wc -l) - before ))
    printf '%s\t%s\t%s\t%s\t%s\n' "$stamp" "$t" "$execs" "$found" "$rc" >>fuzz/logs/history.tsv
}

for t in "${targets[@]}"; do
    while (( $(jobs -rp | wc -l) >= jobs )); do wait -n || true; done
    run_one "$t" &
done
wait

printf '\n%-14s %14s %9s %16s %9s\n' target "execs (run)" findings "execs (all runs)" findings
status=0
for t in "${targets[@]}"; do
    awk -F'\t' -v s="$stamp" -v t="$t" '
        $2 == t { all += $3; allf += $4 }
        $2 == t && $1 == s { run = $3; f = $4; rc = $5 }
        END { printf "%-14s %14d %9d %16d %9d%s\n", t, run, f, all, allf, (rc != 0 && f == 0) ? "  (exit " rc ", see log)" : "" }
    ' fuzz/logs/history.tsv
    f=$(awk -F'\t' -v s="$stamp" -v t="$t" '$1 == s && $2 == t && ($4 > 0 || $5 != 0)' fuzz/logs/history.tsv)
    [[ -z $f ]] || status=1
done
echo "logs: fuzz/logs/*-$stamp.log; findings: fuzz/artifacts/<target>/"
exit $status
