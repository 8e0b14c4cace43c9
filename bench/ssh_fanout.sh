#!/usr/bin/env bash
# SSH fan-out: runbook's ssh.each against what people use instead, in one run.
#
#   bash bench/ssh_fanout.sh                 # N = 50 hosts, median of 5 runs
#   BENCH_RUNS=9 BENCH_N=20 bash bench/ssh_fanout.sh
#   BENCH_COLD=0 bash bench/ssh_fanout.sh    # skip the cold-connection rows
#   RUNBOOK_BIN=build-asan/runbook bash bench/ssh_fanout.sh
#
# N host aliases web1..webN, all on 127.0.0.1, each its own port of the
# throwaway sshd of tests/fixtures/sshd.py (one sshd process per 16 ports:
# OpenSSH names a master by host, port and user, so N aliases of one port
# would share one connection), each running `true`:
#   runbook   one runbook: ssh.each(hosts, function(h) ssh.run(h, {"true"}) end,
#             { concurrency = N }), audit on; and --no-audit
#   xargs     `xargs -P N` of `ssh -F cfg -o ControlMaster=auto
#             -o ControlPath=DIR/ssh-%C -o ControlPersist=60 -o BatchMode=yes
#             -- HOST true`: the options runbook passes, so both use the same
#             masters
# Warm (the headline): a warm-up round opens one master per host, which both
# then reuse, as a runbook does for every command after a host's first.
# Cold (BENCH_COLD=1, default): every master closed before each run, so each
# run pays N handshakes.  Wall time of whole processes, the commands taking
# turns; median of BENCH_RUNS (cold: BENCH_COLD_RUNS, default 3).  No
# thresholds: it reports; the target (runbook within 1.3x of xargs, warm) is
# for reading.  The table is also written to bench/results/ssh_fanout.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null 2>&1 || bash scripts/install-deps.sh python3
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null 2>&1; then
  bash scripts/install-deps.sh openssh-server openssh-client
fi

rb=${RUNBOOK_BIN:-}
if [ -z "$rb" ]; then
  bash scripts/install-deps.sh
  [ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
  rb=build/runbook
fi
rb=$(cd "$(dirname "$rb")" && pwd)/$(basename "$rb")

# short: the control sockets live in $XDG_RUNTIME_DIR/runbook (107-byte limit)
tmp=$(mktemp -d /tmp/rbsshb.XXXXXX)
n=${BENCH_N:-50}
fixture_pid=
cleanup() {
  exec 9>&- 2>/dev/null || true # the fixture stops (and closes the masters) when its stdin closes
  if [ -n "$fixture_pid" ]; then
    for _ in $(seq 100); do kill -0 "$fixture_pid" 2>/dev/null || break; sleep 0.1; done
    kill "$fixture_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/xdg" && chmod 700 "$tmp/xdg"
mkfifo "$tmp/hold"
python3 tests/fixtures/sshd.py --dir "$tmp/sshd" --hosts "$n" --control-dir "$tmp/xdg/runbook" \
  <"$tmp/hold" >"$tmp/fixture.json" 2>"$tmp/fixture.err" &
fixture_pid=$!
exec 9>"$tmp/hold"
for _ in $(seq 400); do
  [ -s "$tmp/fixture.json" ] && break
  kill -0 "$fixture_pid" 2>/dev/null || { cat "$tmp/fixture.err" >&2; exit 1; }
  sleep 0.05
done
[ -s "$tmp/fixture.json" ] || { echo "ssh_fanout: the sshd fixture did not start" >&2; exit 1; }

mkdir -p bench/results
RB="$rb" TMP="$tmp" N="$n" python3 - <<'PY' | tee bench/results/ssh_fanout.txt
import glob, json, os, platform, statistics, subprocess, time

rb, tmp, n = os.environ["RB"], os.environ["TMP"], int(os.environ["N"])
runs = int(os.environ.get("BENCH_RUNS", "5"))
cold = os.environ.get("BENCH_COLD", "1") != "0"
cold_runs = int(os.environ.get("BENCH_COLD_RUNS", "3"))
fx = json.load(open(os.path.join(tmp, "fixture.json")))
hosts, config = fx["hosts"], fx["config"]
xdg = os.path.join(tmp, "xdg")
control = os.path.join(xdg, "runbook")
env = dict(os.environ, XDG_RUNTIME_DIR=xdg)
work = os.path.join(tmp, "work")
os.makedirs(work)

with open(os.path.join(work, "runbook.yaml"), "w") as f:
    f.write("ssh:\n  config: %s\n  inventory:\n    web: [%s]\n" % (config, ", ".join(hosts)))
with open(os.path.join(work, "fanout.lua"), "w") as f:
    f.write('runbook { name = "bench/ssh-fanout" }\n'
            'step("fan out", function()\n'
            '  ssh.each(ssh.hosts("web"), function(h) return ssh.run(h, { "true" }) end,\n'
            '           { concurrency = %d })\n'
            'end)\n' % n)
with open(os.path.join(work, "hosts"), "w") as f:
    f.write("\n".join(hosts) + "\n")

ssh_opts = "-F %s -o ControlMaster=auto -o ControlPath=%s/ssh-%%C -o ControlPersist=60 " \
           "-o BatchMode=yes" % (config, control)
cmds = {
    "rb": [rb, "run", "fanout.lua", "--audit", os.path.join(tmp, "audit.db")],
    "rb_na": [rb, "run", "fanout.lua", "--no-audit"],
    "xargs": ["bash", "-c", 'xargs -P %d -I{} ssh %s -- {} true < hosts' % (n, ssh_opts)],
}
names = {
    "rb": "runbook: ssh.each + ssh.run, audit on",
    "rb_na": "runbook: same, --no-audit",
    "xargs": "xargs -P %d ssh (same -o options)" % n,
}

def run(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit("ssh_fanout: %s exited %d\n%s" % (" ".join(cmd)[:300], p.returncode,
                                                            p.stdout.decode(errors="replace")[-3000:]))
    return t

def close_masters():
    for s in glob.glob(os.path.join(control, "ssh-*")):
        subprocess.run(["ssh", "-F", "/dev/null", "-o", "ControlPath=" + s, "-O", "exit", "x"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):  # the masters remove their sockets as they go
        if not glob.glob(os.path.join(control, "ssh-*")):
            break
        time.sleep(0.02)

def measure(nruns, before=None):
    samples = {k: [] for k in cmds}
    # round 0 warms up and opens the masters; cold runs have nothing to warm
    for r in range(1 if before else 0, nruns + 1):
        for k, cmd in cmds.items():
            if before:
                before()
            t = run(cmd)
            if r:
                samples[k].append(t)
    return {k: statistics.median(v) for k, v in samples.items()}, samples

def accepted():
    c = 0
    for log in fx["logs"]:
        with open(log, errors="replace") as f:
            c += sum(1 for l in f if "Accepted publickey" in l)
    return c

print("runbook SSH fan-out — %s, %s, %d CPUs, OpenSSH %s, median of %d runs"
      % (time.strftime("%Y-%m-%d"), platform.platform(terse=True), os.cpu_count() or 0,
         subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.split(",")[0].strip(),
         runs))
print("binary: %s; %d host aliases on 127.0.0.1 (%d sshd processes), each running `true`"
      % (rb, n, len(fx["logs"])))
print()

fmt = "  %-42s %11s %14s"
verdicts = []
rows = [("warm: one master per host, reused", runs, None)]
if cold:
    rows.append(("cold: every master closed before each run", cold_runs, close_masters))
for title, nruns, before in rows:
    a0 = accepted()
    t, samples = measure(nruns, before)
    conns = accepted() - a0
    print("%s (median of %d)" % (title, nruns))
    print(fmt % ("command", "wall time", "runbook/this"))
    print(fmt % ("-" * 42, "-" * 11, "-" * 14))
    for k in cmds:
        print(fmt % (names[k], "%.1f ms" % (t[k] * 1e3), "%.2fx" % (t["rb"] / t[k])))
    spread, worst = max(((max(v) - min(v)) / statistics.median(v), k) for k, v in samples.items())
    if spread > 0.5:
        v = samples[worst]
        print("  note: runs varied by up to %.0f%% around the median (%s: %.1f to %.1f ms)"
              % (spread * 100, names[worst], min(v) * 1e3, max(v) * 1e3))
    print("  sshd authenticated %d connections for %d runs of %d commands"
          % (conns, (nruns + (0 if before else 1)) * len(cmds), n))
    print()
    verdicts.append("%s: runbook %.2fx xargs (--no-audit %.2fx)"
                    % (title.split(":")[0], t["rb"] / t["xargs"], t["rb_na"] / t["xargs"]))
print("target: runbook within 1.3x of xargs -P %d, warm" % n)
for v in verdicts:
    print("  " + v)
PY
