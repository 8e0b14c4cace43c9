#!/usr/bin/env bash
# What checking every call costs: ns per call of cheap functions (a pure C
# function, a stdlib function in Lua, an action through the funnel), the
# fastest of BENCH_RUNS runs each, for this build and, given BASE_BIN, a
# build from before the checks (or of any other commit) in the same run.
#
#   bash bench/strict_calls.sh
#   BASE_BIN=/tmp/build-594/runbook bash bench/strict_calls.sh   # e.g. 594ade5
#   BENCH_RUNS=9 BENCH_N=1000000 bash bench/strict_calls.sh
#
# CPU time inside one process (os.clock around the loop), --no-audit, so the
# numbers are the calls themselves, not start-up or the audit log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${RUNBOOK_BIN:-$here/../build/runbook}
runs=${BENCH_RUNS:-6}
measure() { # BIN -> "name<TAB>min ns" lines
    for _ in $(seq "$runs"); do
        "$1" run "$here/strict_calls.lua" --no-audit | grep 'ns/call'
    done | awk '{ v = $(NF - 1); name = $0; sub(/ +[0-9]+ ns\/call$/, "", name)
                  if (!(name in m) || v < m[name]) m[name] = v }
                END { for (k in m) printf "%s\t%d\n", k, m[k] }' | sort
}
measure "$bin" > /tmp/strict_calls.now.$$
if [ -n "${BASE_BIN:-}" ]; then
    measure "$BASE_BIN" > /tmp/strict_calls.base.$$
    printf '%-34s %10s %10s %8s\n' call "base ns" "this ns" ratio
    join -t $'\t' /tmp/strict_calls.base.$$ /tmp/strict_calls.now.$$ |
        awk -F'\t' '{ printf "%-34s %10d %10d %7.2fx\n", $1, $2, $3, $3 / $2 }'
    rm -f /tmp/strict_calls.base.$$
else
    awk -F'\t' '{ printf "%-34s %10d ns\n", $1, $2 }' /tmp/strict_calls.now.$$
fi
rm -f /tmp/strict_calls.now.$$
