#!/usr/bin/env bash
# Fuzz the parsers and the redactor with libFuzzer (clang) under ASan+UBSan.
#
#   bash scripts/fuzz.sh                  # every target, FUZZ_SECONDS (30) each
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh yaml json   # some targets, longer
#   bash scripts/fuzz.sh --seed           # refresh fuzz/corpus/ from the tree
#
# Targets (fuzz/TARGET.c, cmake/fuzz.cmake): yaml (the YAML -> Lua
# converter and encoder), json (json.decode/encode, jsonw), config
# (runbook.yaml), scenario (a scenario file as `runbook test` loads it),
# params (declared params against --param and friends), redact.
#
# Builds build-fuzz/ (RUNBOOK_FUZZ_BUILD overrides) with clang and
# -DRUNBOOK_FUZZ=ON, then runs the targets one after another, one process
# each (the machine may have 2 cores), starting from fuzz/corpus/TARGET,
# fuzz/regressions/TARGET and what earlier runs found (BUILD/corpus/TARGET,
# never committed).  Prints a table of executions per target.  A crash,
# leak, UB report, oracle failure (fuzz.h), timeout (5 s) or out-of-memory
# copies the input to fuzz/crashes/TARGET/, prints how to reproduce it, and
# makes the script exit 1 after the remaining targets ran.  Once fixed, move
# the input to fuzz/regressions/TARGET/ (ctest fuzz_regressions/TARGET
# replays it in the normal build, no clang needed).
#
# The corpus is committed rather than built at run time: the normal test
# suite replays it too (fuzz/replay.c), and a CI run then starts from the
# same inputs as the last person's.  --seed copies the tree's scenario and
# runbook.yaml files and JSON fixtures in, named by content hash (so
# duplicates collapse), skipping any file above the target's -max_len;
# the hand-written seeds (descriptive names) stay.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(yaml json config scenario params redact)
# -max_len per target: a little above the largest real input of its kind
# (scenario files and JSON fixtures are below 5 KB); more only slows the search
declare -A MAX_LEN=([yaml]=8192 [json]=8192 [config]=4096 [scenario]=8192 [params]=2048
                    [redact]=2048)

seed() {
  local t=$1
  shift
  local f sum n=0
  declare -A have=()
  mkdir -p "fuzz/corpus/$t"
  # the same bytes under a hand-written name count too
  for f in "fuzz/corpus/$t"/*; do
    [ -f "$f" ] && have[$(sha1sum <"$f" | cut -c1-40)]=1
  done
  for f in "$@"; do
    [ -f "$f" ] && [ "$(stat -c %s "$f")" -le "${MAX_LEN[$t]}" ] || continue
    sum=$(sha1sum <"$f" | cut -c1-40)
    [ -z "${have[$sum]:-}" ] || continue
    have[$sum]=1
    cp "$f" "fuzz/corpus/$t/$sum"
    n=$((n + 1))
  done
  echo "fuzz/corpus/$t: $n new, $(ls "fuzz/corpus/$t" | wc -l) files, $(cat "fuzz/corpus/$t"/* | wc -c) bytes"
}

if [ "${1:-}" = --seed ]; then
  shopt -s globstar nullglob
  scenarios=(tests/scenarios/**/*.yaml runbooks/**/tests/*.yaml)
  configs=(templates/**/runbook.yaml tests/**/runbook.yaml runbooks/**/runbook.yaml)
  seed scenario "${scenarios[@]}"
  seed yaml "${scenarios[@]}" "${configs[@]}"
  seed config "${configs[@]}"
  seed json runbooks/**/*.json tests/**/*.json
  exit 0
fi

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
for t in "${targets[@]}"; do
  [ -n "${MAX_LEN[$t]:-}" ] || { echo "fuzz: no target '$t' (${ALL[*]})" >&2; exit 2; }
done
seconds=${FUZZ_SECONDS:-30}
dir=${RUNBOOK_FUZZ_BUILD:-build-fuzz}

# clang, libFuzzer and the sanitizer runtimes (libclang-rt-14-dev: Debian
# bookworm's clang only recommends it), llvm-symbolizer for readable reports
bash scripts/install-deps.sh clang libclang-rt-14-dev llvm-14
symbolizer=$(command -v llvm-symbolizer || ls /usr/lib/llvm-*/bin/llvm-symbolizer 2>/dev/null | tail -n 1 || true)
[ -z "$symbolizer" ] || export ASAN_SYMBOLIZER_PATH=$symbolizer

echo "== configure $dir (CC=clang -DRUNBOOK_FUZZ=ON)"
CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRUNBOOK_FUZZ=ON \
  -DRUNBOOK_SANITIZE=OFF >/dev/null
echo "== build $dir"
cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
rows=()
for t in "${targets[@]}"; do
  work="$dir/corpus/$t" artifacts="$dir/artifacts/$t" log="$dir/fuzz-$t.log"
  rm -rf "$artifacts"
  mkdir -p "$work" "$artifacts"
  inputs=("$work" "fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && inputs+=("fuzz/regressions/$t")
  echo "== fuzz $t: ${seconds}s, -max_len=${MAX_LEN[$t]} (log: $log)"
  rc=0
  "$dir/fuzz_$t" -max_total_time="$seconds" -max_len="${MAX_LEN[$t]}" -timeout=5 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "${inputs[@]}" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  units=$(ls "$work" | wc -l)
  found=("$artifacts"/*)
  if [ "$rc" -ne 0 ] || [ -e "${found[0]}" ]; then
    failed=1
    result=FAILED
    # the report: from the sanitizer's or libFuzzer's first line of it
    grep -n -m 1 -E '^==[0-9]+==ERROR|runtime error|fuzz: oracle failed|ALARM|out-of-memory' "$log" |
      cut -d: -f1 | { read -r from && tail -n +"$from" "$log" | head -n 60; } || tail -n 40 "$log"
    mkdir -p "fuzz/crashes/$t"
    for a in "${found[@]}"; do
      [ -e "$a" ] || continue
      cp "$a" "fuzz/crashes/$t/"
      echo "fuzz: $t: input saved as fuzz/crashes/$t/${a##*/}"
      echo "  reproduce: $dir/fuzz_$t fuzz/crashes/$t/${a##*/}"
      echo "  (or without clang: build/fuzz_replay_$t fuzz/crashes/$t/${a##*/})"
    done
    [ -e "${found[0]}" ] || echo "fuzz: $t exited $rc without an input saved; see $log"
  else
    result=ok
  fi
  rows+=("$(printf '%-10s %8s %12s %10s %8s  %s' "$t" "${seconds}s" "${execs:-?}" "${rate:-?}" \
    "$units" "$result")")
done

echo
printf '%-10s %8s %12s %10s %8s  %s\n' target time executions "execs/s" corpus result
printf '%s\n' "${rows[@]}"
if [ "$failed" -ne 0 ]; then
  echo "fuzz: FAILED (inputs under fuzz/crashes/)" >&2
  exit 1
fi
echo "fuzz: no crash, leak, undefined behaviour, timeout or oracle failure"
