#!/usr/bin/env bash
# From a fresh clone to a first audited run:
# install the build dependencies, build runbook, then run
# examples/quickstart.lua with --dry-run, then live, and show the audit
# record of the live run.  Works without a terminal (CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rbqs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "== build (build/)"
if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build build -j "$(nproc 2>/dev/null || echo 2)"; } >"$tmp/build.log" 2>&1; then
  cat "$tmp/build.log" >&2
  echo "quickstart: the build failed (output above)" >&2
  exit 1
fi
audit="$tmp/audit.db"
rb=build/runbook
example=examples/quickstart.lua
# The example keeps its sample data and backups under this directory.
export TMPDIR="$tmp"

echo
echo "== 1/3  dry run: reads run, changes are only shown (would: ...)"
echo "\$ runbook run $example --dry-run --audit $audit"
"$rb" run "$example" --dry-run --audit "$audit"

echo
echo "== 2/3  live run"
echo "\$ runbook run $example --audit $audit"
"$rb" run "$example" --audit "$audit"

echo
echo "== 3/3  the audit log of that live run"
run_id=$("$rb" audit list --audit "$audit" --json | python3 -c '
import json, sys
runs = [json.loads(line) for line in sys.stdin if line.strip()]   # newest first
print(next(r["run_id"] for r in runs if r.get("mode") == "live"))')
echo "\$ runbook audit list --audit $audit"
"$rb" audit list --audit "$audit"
echo
echo "\$ runbook audit show $run_id --audit $audit"
"$rb" audit show "$run_id" --audit "$audit"
echo
echo "\$ runbook audit verify --audit $audit"
"$rb" audit verify --audit "$audit"

echo
echo "Done.  Next: read examples/quickstart.lua, try  $rb run $example --confirm,"
echo "and see README.md for the tour.  Your own runs are audited in ~/.local/state/runbook/audit.db."
