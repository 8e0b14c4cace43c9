#!/usr/bin/env bash
# Build runbook with warnings as errors and run the whole test suite.
#
#   bash scripts/test.sh                      # build/ ; ctest
#   RUNBOOK_SANITIZE=1 bash scripts/test.sh   # build-asan/ with ASan+UBSan ; ctest
#
# Exits non-zero on any build or test failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

if [ "${RUNBOOK_SANITIZE:-0}" = 1 ]; then
  dir=build-asan
  flags=(-DRUNBOOK_SANITIZE=ON)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
  dir=build
  flags=(-DRUNBOOK_SANITIZE=OFF)
fi

jobs=$(nproc 2>/dev/null || echo 2)
echo "== configure $dir (${flags[*]} -DRUNBOOK_WERROR=ON)"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRUNBOOK_WERROR=ON "${flags[@]}" >/dev/null
echo "== build $dir"
cmake --build "$dir" -j "$jobs"
echo "== test $dir"
cd "$dir"
ctest --output-on-failure -j2
