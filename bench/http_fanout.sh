#!/usr/bin/env bash
# HTTP health-check fan-out: runbook against what people use instead, in one run.
#
#   bash bench/http_fanout.sh                  # N = 50 and 200, delay 50 ms and 0
#   BENCH_RUNS=11 bash bench/http_fanout.sh    # median of 11 runs (default 7)
#   BENCH_ANSIBLE=0 bash bench/http_fanout.sh  # skip Ansible (the slow one)
#   RUNBOOK_BIN=build-asan/runbook bash bench/http_fanout.sh
#
# N loopback endpoints (distinct URLs /delay/<ms>?i=K on one server), each
# answering 200 after 50 ms or at once, fetched by:
#   runbook     a runbook with one `http.get_all(urls)` (default concurrency),
#               audit on; also --no-audit, `concurrency = N`, and the stdlib
#               `health` module when it is there (RUNBOOK_HEALTH_CALL='expr'
#               overrides the guessed call; `urls` is the list)
#   bash loop   `curl -sf -o /dev/null URL` one after the other
#   xargs       `xargs -P 16 -n 1 curl -sf -o /dev/null`
#   Python      concurrent.futures.ThreadPoolExecutor(min(N,100)) + urllib
#               (bench/http/python_pool.py)
#   Ansible     one ansible-playbook, ansible.builtin.uri with `loop:` over
#               the URLs (Debian's ansible package; installed if missing)
#   floor       one `curl -Z --parallel-immediate --parallel-max N` process:
#               every transfer in flight at once
# Wall time of whole processes (python3 perf_counter around subprocess.run),
# the commands taking turns after a warm-up round; median of BENCH_RUNS
# (Ansible: BENCH_ANSIBLE_RUNS at N <= 50, 1 above).  Peak RSS of the
# 200-endpoint runbook runs with /usr/bin/time -f %M.
#
# The server is bench/http/fastd.py (asyncio, keep-alive, BENCH_SERVER_PROCS
# processes on one SO_REUSEPORT port, default 1): the threaded test fixture
# tests/fixtures/httpd.py spends ~0.5 ms of Python per request and is the
# bottleneck at 200-way fan-out; its floor is printed beside fastd's so that
# can be checked.  No thresholds: it reports, the targets are for reading.
# The table is also written to bench/results/http_fanout.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null 2>&1 || bash scripts/install-deps.sh python3
command -v curl >/dev/null 2>&1 || bash scripts/install-deps.sh curl
[ -x /usr/bin/time ] || bash scripts/install-deps.sh time
if [ "${BENCH_ANSIBLE:-1}" != 0 ] && ! command -v ansible-playbook >/dev/null 2>&1; then
  bash scripts/install-deps.sh ansible
fi

rb=${RUNBOOK_BIN:-}
if [ -z "$rb" ]; then
  bash scripts/install-deps.sh
  [ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
  rb=build/runbook
fi
rb=$(cd "$(dirname "$rb")" && pwd)/$(basename "$rb")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-httpbench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# not in $(...): the servers exit when their parent does (a subshell would)
start_server() { # $1: variable to set to the port; the rest: the command
  local var=$1 out="$tmp/port.$1"
  shift
  "$@" >"$out" 2>"$out.err" &
  pids+=($!)
  for _ in $(seq 200); do
    if [ -s "$out" ]; then
      printf -v "$var" '%s' "$(head -1 "$out")"
      return
    fi
    sleep 0.05
  done
  echo "http_fanout: server did not start: $* $(cat "$out.err")" >&2
  exit 1
}
start_server fast_port python3 bench/http/fastd.py --procs "${BENCH_SERVER_PROCS:-1}"
start_server fixture_port python3 tests/fixtures/httpd.py

mkdir -p bench/results
RB="$rb" TMP="$tmp" FAST_PORT="$fast_port" FIXTURE_PORT="$fixture_port" \
  python3 - <<'PY' | tee bench/results/http_fanout.txt
import os, platform, statistics, subprocess, sys, time

rb, tmp = os.environ["RB"], os.environ["TMP"]
fast, fixture = int(os.environ["FAST_PORT"]), int(os.environ["FIXTURE_PORT"])
runs = int(os.environ.get("BENCH_RUNS", "7"))
ansible_runs = int(os.environ.get("BENCH_ANSIBLE_RUNS", "3"))
with_ansible = os.environ.get("BENCH_ANSIBLE", "1") != "0"
sizes = [int(x) for x in os.environ.get("BENCH_N", "50 200").split()]
delays = [int(x) for x in os.environ.get("BENCH_DELAYS", "50 0").split()]
audit = os.path.join(tmp, "audit.db")
here = os.getcwd()

def f(name):
    return os.path.join(tmp, name)

def run(cmd, check=True):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t = time.perf_counter() - t0
    if check and p.returncode != 0:
        raise SystemExit("http_fanout: %s exited %d\n%s" % (
            " ".join(cmd)[:300], p.returncode, p.stdout.decode(errors="replace")[-3000:]))
    return t, p

def lua_list(urls):
    return "{\n" + "".join('  "%s",\n' % u for u in urls) + "}"

# ---- the stdlib health module, if it is there: find its call --------------------
health_call = os.environ.get("RUNBOOK_HEALTH_CALL")
health_note = None
if not health_call:
    with open(f("probe.lua"), "w") as fh:
        fh.write('runbook { name = "bench/probe" }\n'
                 'local ok, h = pcall(require, "health")\n'
                 'if not ok or type(h) ~= "table" then print("NOHEALTH") return end\n'
                 'for _, n in ipairs{ "http_all", "check_all", "all", "urls", "http", "check" } do\n'
                 '  if type(h[n]) == "function" then print("FN " .. n) return end\n'
                 'end\n'
                 'local ks = {} for k in pairs(h) do ks[#ks + 1] = k end\n'
                 'print("KEYS " .. table.concat(ks, ","))\n')
    out = subprocess.run([rb, "run", f("probe.lua"), "--no-audit"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        if line.startswith("FN "):
            health_call = 'require("health").%s(urls)' % line[3:].strip()
        elif line.startswith("KEYS "):
            health_note = "stdlib health has no fan-out call I know (%s); set RUNBOOK_HEALTH_CALL" % line[5:]
        elif line.startswith("NOHEALTH"):
            health_note = "stdlib health: not in this build yet"

# ---- the commands ----------------------------------------------------------------
def commands(n, delay, port):
    urls = ["http://127.0.0.1:%d/delay/%d?i=%d" % (port, delay, i) for i in range(n)]
    tag = "%d_%d_%d" % (n, delay, port)
    with open(f("urls_" + tag), "w") as fh:
        fh.write("\n".join(urls) + "\n")
    with open(f("curlcfg_" + tag), "w") as fh:
        for u in urls:
            fh.write('url = "%s"\noutput = "/dev/null"\n' % u)
    checkall = ('  for i, r in ipairs(rs) do\n'
                '    check(r.status == 200, "item %d: %s", i, tostring(r.error or r.status))\n'
                '  end\n')
    def rbfile(name, call):
        p = f("%s_%s.lua" % (name, tag))
        with open(p, "w") as fh:
            fh.write('runbook { name = "bench/%s" }\nlocal urls = %s\n'
                     'step("fan out", function()\n  local rs = %s\n%s end)\n'
                     % (name, lua_list(urls), call, checkall if "get_all" in call else
                        '  check(type(rs) ~= "table" or rs.ok ~= false, "not all up")\n'))
        return p
    cmds = {}
    cmds["rb"] = [rb, "run", rbfile("get_all", "http.get_all(urls)"), "--audit", audit]
    cmds["rb_na"] = [rb, "run", rbfile("get_all", "http.get_all(urls)"), "--no-audit"]
    cmds["rb_cn"] = [rb, "run", rbfile("get_all_n", "http.get_all(urls, { concurrency = %d })" % n),
                     "--audit", audit]
    if health_call:
        cmds["rb_health"] = [rb, "run", rbfile("health", health_call), "--audit", audit]
    cmds["bash"] = ["bash", "-c", 'while read -r u; do curl -sf -o /dev/null "$u" || exit 1; done < "$0"',
                    f("urls_" + tag)]
    cmds["xargs"] = ["bash", "-c", 'xargs -P 16 -n 1 curl -sf -o /dev/null < "$0"', f("urls_" + tag)]
    cmds["python"] = [sys.executable, os.path.join(here, "bench/http/python_pool.py"), f("urls_" + tag)]
    if with_ansible:
        pb = f("playbook_%s.yml" % tag)
        with open(pb, "w") as fh:
            fh.write("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
                     "    - name: health\n      ansible.builtin.uri:\n        url: \"{{ item }}\"\n"
                     "        status_code: 200\n      loop:\n")
            fh.write("".join("        - %s\n" % u for u in urls))
        cmds["ansible"] = ["ansible-playbook", "-i", "localhost,", pb]
    cmds["floor"] = ["curl", "-sf", "-Z", "--parallel-immediate", "--parallel-max", str(n),
                     "-K", f("curlcfg_" + tag)]
    return cmds

os.environ.update(ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                  ANSIBLE_PIPELINING="true", ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="false",
                  ANSIBLE_LOCAL_TEMP=f("ansible-tmp"), ANSIBLE_HOME=f("ansible-home"))

def measure(n, delay, port, only=None, nruns=runs):
    cmds = commands(n, delay, port)
    if only:
        cmds = {k: v for k, v in cmds.items() if k in only}
    samples = {k: [] for k in cmds}
    for r in range(nruns + 1):
        for k, cmd in cmds.items():
            if k == "ansible":
                want = ansible_runs if n <= 50 else 1
                if r == 0 or r > want:
                    continue
            t, _ = run(cmd)
            if r:
                samples[k].append(t)
    return {k: statistics.median(v) for k, v in samples.items() if v}, samples

def peak_rss(cmd, times=3):
    peak = 0
    for _ in range(times):
        out = f("rss.txt")
        run(["/usr/bin/time", "-f", "%M", "-o", out] + cmd)
        with open(out) as fh:
            peak = max(peak, int(fh.read().split()[-1]))
    return peak

names = {
    "rb": "runbook: http.get_all(urls), audit on",
    "rb_na": "runbook: same, --no-audit",
    "rb_cn": "runbook: get_all, concurrency = N",
    "rb_health": "runbook: stdlib health",
    "bash": "bash loop of curl",
    "xargs": "xargs -P 16 curl",
    "python": "Python ThreadPoolExecutor + urllib",
    "ansible": "Ansible uri, loop: (one playbook)",
    "floor": "floor: one curl -Z, N in flight",
}
peers = ["bash", "xargs", "python", "ansible"]

print("runbook HTTP fan-out — %s, %s, %d CPUs, median of %d runs (Ansible: %d at N<=50, 1 above)"
      % (time.strftime("%Y-%m-%d"), platform.platform(terse=True), os.cpu_count() or 0, runs,
         ansible_runs))
print("binary: %s; server: bench/http/fastd.py (%s process(es), port %d)"
      % (rb, os.environ.get("BENCH_SERVER_PROCS", "1"), fast))
if health_note:
    print(health_note)
elif health_call:
    print("stdlib health row: local rs = %s" % health_call)
print()

verdicts, rss = [], {}
fmt = "  %-40s %11s %13s %13s"
for n in sizes:
    for delay in delays:
        t, samples = measure(n, delay, fast)
        print("N = %d endpoints, each answering %s" % (n, "after %d ms" % delay if delay else "at once"))
        print(fmt % ("command", "wall time", "runbook/this", "this/floor"))
        print(fmt % ("-" * 40, "-" * 11, "-" * 13, "-" * 13))
        for k in names:
            if k not in t:
                continue
            print(fmt % (names[k], "%.1f ms" % (t[k] * 1e3), "%.3gx" % (t["rb"] / t[k]),
                         "%.3gx" % (t[k] / t["floor"])))
        ideal = delay / 1000.0
        target = 1.5 if delay else 2.0
        present = [p for p in peers if p in t]
        fastest = all(t["rb"] < t[p] for p in present)
        slower = [names[p] for p in present if t["rb"] >= t[p]]
        verdicts.append("N=%d delay=%dms: runbook %s of the peers (%s); %.2fx the floor (target "
                        "within %.1fx: %s)%s" % (
                            n, delay, "fastest" if fastest else "NOT fastest",
                            ", ".join(present) if fastest else "slower than " + ", ".join(slower),
                            t["rb"] / t["floor"], target,
                            "met" if t["rb"] / t["floor"] <= target else "missed",
                            "; with concurrency = N: %.2fx" % (t["rb_cn"] / t["floor"])))
        spread, worst = max([((max(v) - min(v)) / statistics.median(v), k)
                             for k, v in samples.items() if len(v) > 1] or [(0, "")])
        if spread > 0.5:
            v = samples[worst]
            print("  note: runs varied by up to %.0f%% around the median (%s: %.1f to %.1f ms)"
                  % (spread * 100, names[worst], min(v) * 1e3, max(v) * 1e3))
        print()
        if n == max(sizes):
            rss[delay] = peak_rss(commands(n, delay, fast)["rb"])

# is the server the bottleneck?  the floor against it and against the fixture
n = max(sizes)
print("server check, N = %d, floor (one curl -Z, all in flight), median of 5:" % n)
for delay in delays:
    a, _ = measure(n, delay, fast, only={"floor"}, nruns=5)
    b, _ = measure(n, delay, fixture, only={"floor"}, nruns=5)
    print("  delay %3d ms: fastd.py %.1f ms, threaded fixture httpd.py %.1f ms%s"
          % (delay, a["floor"] * 1e3, b["floor"] * 1e3,
             " (ideal >= %d ms + connection set-up)" % delay if delay else ""))
print()
print("targets: runbook fastest of the peers at every N and delay; within 1.5x of the floor")
print("with delay, 2x without; peak RSS < 20 MB")
for v in verdicts:
    print("  " + v)
for delay, kb in sorted(rss.items(), reverse=True):
    print("  peak RSS, runbook get_all over %d endpoints, delay %d ms: %.1f MB (%s)"
          % (n, delay, kb / 1024.0, "met" if kb < 20 * 1024 else "missed"))
PY
