#!/usr/bin/env bash
# `runbook test` over the runbook library: the runner against the cost of a
# process per scenario (what it did before its workers), in one run.
#
#   bash bench/scenarios.sh                 # median of BENCH_RUNS runs each (default 5)
#   BENCH_RUNS=11 bash bench/scenarios.sh
#   BENCH_DIR=tests bash bench/scenarios.sh # another tree of scenarios (default runbooks)
#   RUNBOOK_BIN=build-asan/runbook bash bench/scenarios.sh
#
# a) `runbook test runbooks`: --jobs workers (default: the number of CPUs)
#    forked from the runner, a fresh engine per scenario in them
# b) the same with --require-coverage (what CI's library_scenarios runs)
# c) the former architecture's work: `runbook test --one FILE` for every
#    scenario, a process each, `xargs -P <CPUs>` -- each of them computes
#    the coverage too, as the former runner's children did
# Before timing, every scenario's verdict from (c) is checked against the
# runner's line for it: passed, failed, malformed and skipped alike, or the
# bench stops (a faster runner that judges differently is no result).
#
# Wall time of whole processes (python3 time.perf_counter around
# subprocess.run) and their CPU time (user + system of the process and all
# it waited for, from getrusage(RUSAGE_CHILDREN)), the commands taking turns
# after a warm-up round; median of the runs.  No thresholds: it reports, the
# target is for reading.  The table is also written to
# bench/results/scenarios.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null 2>&1 || bash scripts/install-deps.sh python3
command -v xargs >/dev/null 2>&1 || bash scripts/install-deps.sh findutils

rb=${RUNBOOK_BIN:-}
if [ -z "$rb" ]; then
  bash scripts/install-deps.sh
  [ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j "$(nproc 2>/dev/null || echo 2)" --target runbook >/dev/null
  rb=build/runbook
fi
rb=$(cd "$(dirname "$rb")" && pwd)/$(basename "$rb")

mkdir -p bench/results
RB="$rb" python3 - <<'PY' | tee bench/results/scenarios.txt
import concurrent.futures, json, os, platform, re, resource, statistics, subprocess, time

rb = os.environ["RB"]
runs = int(os.environ.get("BENCH_RUNS", "5"))
tree = os.environ.get("BENCH_DIR", "runbooks")
cpus = os.cpu_count() or 1

files = sorted(os.path.join(d, f) for d, _, fs in os.walk(tree) for f in fs
               if f.endswith(".scenario.yaml"))
if not files:
    raise SystemExit("scenarios: no *.scenario.yaml under %s" % tree)
listing = "\n".join(files) + "\n"

def timed(cmd, stdin=None):
    """(wall s, cpu s, stdout) of cmd and everything it waited for"""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode not in (0, 1, 123):  # 1: a scenario failed; 123: xargs saw one fail
        raise SystemExit("scenarios: %s exited %d\n%s" % (" ".join(cmd[:4]), p.returncode,
                                                          p.stderr[-3000:]))
    return wall, cpu, p.stdout

cmds = {
    "runner": ([rb, "test", tree], None),
    "runner_cov": ([rb, "test", tree, "--require-coverage"], None),
    "per_process": (["xargs", "-P", str(cpus), "-n", "1", rb, "test", "--one"], listing),
}

# ---- the same verdicts: the runner's lines against a process per scenario ----
MARK = re.compile(r"^(?:\x1b\[\d+m)?([✓✗])(?:\x1b\[0m)? (\S+) |^- (\S+) \(skipped: ")
_, _, out = timed(cmds["runner"][0])
runner = {}
for line in out.splitlines():
    m = MARK.match(line)
    if m:
        runner[m.group(2) or m.group(3)] = ("skipped" if m.group(3) else
                                            "passed" if m.group(1) == "✓" else "failed")

def one(f):
    p = subprocess.run([rb, "test", "--one", f], capture_output=True, text=True)
    try:
        st = json.loads(p.stdout.splitlines()[-1])["status"]
    except (IndexError, ValueError, KeyError):
        st = "crashed"
    return f, "failed" if st in ("malformed", "crashed") else st

with concurrent.futures.ThreadPoolExecutor(cpus) as pool:
    alone = dict(pool.map(one, files))
differ = [f for f in files if runner.get(f) != alone[f]]
if differ:
    raise SystemExit("scenarios: the runner and a process per scenario judge differently:\n" +
                     "\n".join("  %s: runner %s, alone %s" % (f, runner.get(f), alone[f])
                               for f in differ))
counts = {s: sum(1 for v in alone.values() if v == s) for s in ("passed", "failed", "skipped")}

# ---- timing: round-robin, one warm-up round -----------------------------------
samples = {k: [] for k in cmds}
for r in range(runs + 1):
    for k, (cmd, stdin) in cmds.items():
        wall, cpu, _ = timed(cmd, stdin)
        if r:
            samples[k].append((wall, cpu))
med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
       for k, v in samples.items()}

n = len(files)
print("runbook test — %s, %s, %d CPUs, median of %d runs" %
      (time.strftime("%Y-%m-%d"), platform.platform(terse=True), cpus, runs))
print("binary: %s" % rb)
print("%d scenarios under %s/ (%d passed, %d failed, %d skipped): the same verdict for each"
      % (n, tree, counts["passed"], counts["failed"], counts["skipped"]))
print("from the runner as from a process of its own")
print()
fmt = "%-52s %9s %9s %13s %9s"
print(fmt % ("command", "wall", "CPU", "CPU/scenario", "wall ×"))
print(fmt % ("-" * 52, "-" * 9, "-" * 9, "-" * 13, "-" * 9))
names = {
    "runner": "a) runbook test %s" % tree,
    "runner_cov": "b) runbook test %s --require-coverage" % tree,
    "per_process": "c) xargs -P %d: runbook test --one, one per scenario" % cpus,
}
base = med["per_process"][0]
for k in ("runner", "runner_cov", "per_process"):
    wall, cpu = med[k]
    print(fmt % (names[k], "%.2f s" % wall, "%.2f s" % cpu, "%.1f ms" % (cpu / n * 1e3),
                 "%.2fx" % (base / wall) if k != "per_process" else ""))
print()
print("wall ×: how many times faster than a process per scenario (c)")
wall, cpu = med["runner"]
print("target: the library's scenarios in <= 1.5 s wall on 2 cores: %.2f s on %d (%s)" %
      (wall, cpus, "met" if wall <= 1.5 else "missed"))
spread = max((max(w for w, _ in v) - min(w for w, _ in v)) / statistics.median(w for w, _ in v)
             for v in samples.values())
if spread > 0.5:
    print("note: runs varied by up to %.0f%% around the median; the machine was busy, "
          "so read the ratios with care (BENCH_RUNS=11 helps; CPU time is steadier)"
          % (spread * 100))
PY
echo "(written to bench/results/scenarios.txt)"
