#!/usr/bin/env bash
# runbook against what people use instead, side by side.
#
#   bash bench/run.sh                 # median of BENCH_RUNS runs each (default 11)
#   BENCH_RUNS=31 bash bench/run.sh
#   RUNBOOK_BIN=build-asan/runbook bash bench/run.sh
#
# a) start-up: `runbook run` of a one-step runbook, audit on, vs `lua5.4 -e ''`
# b) spawning: 1000 sequential exec{"true"} in one step vs a bash loop of
#    /bin/true vs a C posix_spawn+waitpid loop (the floor, bench/spawn_floor.c);
#    per spawn = (time of 1000 - time of 0) / 1000, so start-up is not counted
# c) audit cost per action: 10 000 fs.exists with the audit on and with
#    --no-audit, (t_audit - t_noaudit) / 10 000
#
# Wall time of whole processes (python3 time.perf_counter around
# subprocess.run), the commands taking turns; median of the runs.  No
# thresholds: it reports, the targets are for reading.
# The table is also written to bench/results/latest.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-11}
rb=${RUNBOOK_BIN:-build/runbook}

command -v lua5.4 >/dev/null 2>&1 || bash scripts/install-deps.sh lua5.4
command -v python3 >/dev/null 2>&1 || bash scripts/install-deps.sh python3
command -v cc >/dev/null 2>&1 || bash scripts/install-deps.sh
if [ ! -x "$rb" ]; then
  echo "bench: building $rb" >&2
  bash scripts/install-deps.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
  rb=build/runbook
fi
rb=$(cd "$(dirname "$rb")" && pwd)/$(basename "$rb")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/spawn_floor" bench/spawn_floor.c

# the bench runbooks
cat >"$tmp/one_step.lua" <<'LUA'
runbook { name = "bench/one-step" }
step("nothing", function() end)
LUA
for n in 0 1000; do
  cat >"$tmp/exec_$n.lua" <<LUA
runbook { name = "bench/exec-$n" }
step("spawn $n", function()
  for _ = 1, $n do exec{ "true" } end
end)
LUA
done
cat >"$tmp/fs_exists.lua" <<'LUA'
runbook { name = "bench/fs-exists" }
step("10000 fs.exists", function()
  for _ = 1, 10000 do fs.exists("/") end
end)
LUA

mkdir -p bench/results
out=bench/results/latest.txt
RB="$rb" TMP="$tmp" RUNS="$runs" python3 - <<'PY' | tee "$out"
import os, platform, statistics, subprocess, time

rb, tmp, runs = os.environ["RB"], os.environ["TMP"], int(os.environ["RUNS"])
audit = os.path.join(tmp, "audit.db")

def timed(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit("bench: %s exited %d\n%s" % (" ".join(cmd), p.returncode,
                                                       p.stderr.decode(errors="replace")))
    return t

def run(lua, *flags):
    return [rb, "run", os.path.join(tmp, lua), *flags]

floor_bin = os.path.join(tmp, "spawn_floor")
cmds = {
    "rb_one":        run("one_step.lua", "--audit", audit),
    "rb_one_na":     run("one_step.lua", "--no-audit"),
    "lua":           ["lua5.4", "-e", ""],
    "floor_0":       [floor_bin, "0"],
    "floor_1000":    [floor_bin, "1000"],
    "bash_0":        ["bash", "-c", "for ((i = 0; i < 0; i++)); do /bin/true; done"],
    "bash_1000":     ["bash", "-c", "for ((i = 0; i < 1000; i++)); do /bin/true; done"],
    "rb_exec_0":     run("exec_0.lua", "--audit", audit),
    "rb_exec_1000":  run("exec_1000.lua", "--audit", audit),
    "rb_exec_0_na":  run("exec_0.lua", "--no-audit"),
    "rb_exec_1000_na": run("exec_1000.lua", "--no-audit"),
    "rb_fs_audit":   run("fs_exists.lua", "--audit", audit),
    "rb_fs_noaudit": run("fs_exists.lua", "--no-audit"),
}
# Round-robin, so that a change in the machine's load hits every command
# alike; one warm-up round first (page cache, the audit database's schema).
samples = {k: [] for k in cmds}
for r in range(runs + 1):
    for k, cmd in cmds.items():
        t = timed(cmd)
        if r:
            samples[k].append(t)
t = {k: statistics.median(v) for k, v in samples.items()}

ms = lambda s: "%.2f ms" % (s * 1e3)
us = lambda s: "%.1f µs" % (s * 1e6)
rows = []

# a) start-up
rows.append(("a) start-up: one-step runbook, audit on", ms(t["rb_one"]),
             "lua5.4 -e ''", ms(t["lua"]), t["rb_one"] / t["lua"], "within 2x"))
rows.append(("   start-up: one-step runbook, --no-audit", ms(t["rb_one_na"]),
             "lua5.4 -e ''", ms(t["lua"]), t["rb_one_na"] / t["lua"], ""))

# b) spawning, per spawn, start-up subtracted
floor = (t["floor_1000"] - t["floor_0"]) / 1000
bash = (t["bash_1000"] - t["bash_0"]) / 1000
rb_audit = (t["rb_exec_1000"] - t["rb_exec_0"]) / 1000
rb_noaudit = (t["rb_exec_1000_na"] - t["rb_exec_0_na"]) / 1000
rows.append(("b) exec{\"true\"} x1000, audit on", us(rb_audit) + "/spawn",
             "C posix_spawn floor", us(floor) + "/spawn", rb_audit / floor, "within 1.15x"))
rows.append(("   exec{\"true\"} x1000, --no-audit", us(rb_noaudit) + "/spawn",
             "C posix_spawn floor", us(floor) + "/spawn", rb_noaudit / floor, "within 1.15x"))
rows.append(("   exec{\"true\"} x1000, audit on", us(rb_audit) + "/spawn",
             "bash loop of /bin/true", us(bash) + "/spawn", rb_audit / bash, "below 1x"))

# c) audit cost per action
t_on, t_off = t["rb_fs_audit"], t["rb_fs_noaudit"]
per_action = (t_on - t_off) / 10000
rows.append(("c) audit cost per action (10 000 fs.exists)", us(per_action),
             "same run, --no-audit", ms(t_off) + " total", None, "< 25 µs"))

print("runbook benchmarks — %s, %s, %d CPUs, median of %d runs" %
      (time.strftime("%Y-%m-%d"), platform.platform(terse=True), os.cpu_count() or 0, runs))
print("binary: %s" % rb)
print()
head = ("benchmark", "runbook", "compared with", "", "ratio", "target")
fmt = "%-44s %-18s %-24s %-18s %-7s %s"
print(fmt % head)
print(fmt % tuple("-" * n for n in (44, 18, 24, 18, 7, 12)))
for name, ours, other, theirs, ratio, target in rows:
    print(fmt % (name, ours, other, theirs, "%.2fx" % ratio if ratio else "", target))
print()
print("c) 10 000 fs.exists: %.2f ms with the audit on, %.2f ms with --no-audit"
      % (t_on * 1e3, t_off * 1e3))
spread = max((max(v) - min(v)) / statistics.median(v) for v in samples.values())
if spread > 0.5:
    print("note: runs varied by up to %.0f%% around the median; the machine was busy, "
          "so read the ratios with care (BENCH_RUNS=31 helps)" % (spread * 100))
PY
echo "(written to $out)"
