#!/usr/bin/env bash
# The audit log's cost per action: the team's shared log on PostgreSQL over
# loopback TCP against the local SQLite log, in one run; then appends per
# second from 8 concurrent writers into the shared log, chain verified after.
#
#   bash bench/audit_pg.sh                 # median of BENCH_RUNS runs (default 5)
#   BENCH_N=1000 bash bench/audit_pg.sh    # actions per run (default 2000)
#   RUNBOOK_BIN=build/runbook bash bench/audit_pg.sh
#
# a) per-action audit cost: one runbook doing N fs.read of a small file (an
#    action that spawns nothing, so what is measured is the engine and the
#    log), run with --no-audit, with a SQLite log and with
#    --audit postgres://…@127.0.0.1 (tests/fixtures/pg_cluster.py: a throw-away
#    cluster with fsync, full_page_writes and synchronous_commit off, as a
#    test cluster; a production server's commit waits for its WAL flush).
#    Audit cost per action = (run with the log - run without) / N.  Each
#    action is one record committed before the runbook goes on: SQLite one
#    IMMEDIATE transaction in WAL, PostgreSQL one round trip to
#    runbook.append() (lock, read the last hash, insert, commit).
# b) 8 processes at once, each one run of N/8 actions into one shared log:
#    records appended per second of wall time, then `audit verify`.
#
# Wall time of whole processes (time.perf_counter around subprocess.run),
# the variants taking turns after a warm-up round; medians.  No thresholds.
# The table is also written to bench/results/audit_pg.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v python3 >/dev/null 2>&1 || bash scripts/install-deps.sh python3
if ! command -v psql >/dev/null 2>&1 ||
   ! python3 -c 'import sys; sys.path.insert(0, "tests/fixtures"); import pg_cluster
sys.exit(pg_cluster.find_bindir() is None)'; then
  bash scripts/install-deps.sh postgresql
fi

rb=${RUNBOOK_BIN:-}
if [ -z "$rb" ]; then
  bash scripts/install-deps.sh
  [ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
  rb=build/runbook
fi
rb=$(cd "$(dirname "$rb")" && pwd)/$(basename "$rb")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-auditbench.XXXXXX")
chmod 755 "$tmp" # as root the server runs as postgres/nobody and must reach $tmp/pg
pg_started=0
cleanup() {
  if [ "$pg_started" = 1 ]; then
    python3 tests/fixtures/pg_cluster.py stop "$tmp/pg" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
cp "$rb" "$tmp/runbook" # a rebuild of build/ meanwhile cannot change what is measured

pg_started=1
python3 tests/fixtures/pg_cluster.py start "$tmp/pg" >"$tmp/pg.env"
# shellcheck disable=SC1091
. "$tmp/pg.env" # PGHOST, PGPORT, PGUSER, PGPASSWORD, RB_PG_URL (TCP, 127.0.0.1)

mkdir -p bench/results
RB="$tmp/runbook" RB_SHOWN="$rb" TMP="$tmp" python3 - <<'PY' | tee "$tmp/audit_pg.txt"
import os, platform, statistics, subprocess, time

rb, tmp = os.environ["RB"], os.environ["TMP"]
runs = int(os.environ.get("BENCH_RUNS", "5"))
n = int(os.environ.get("BENCH_N", "2000"))
base_url = os.environ["RB_PG_URL"].rsplit("/", 1)[0]

def psql(sql, db="postgres"):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                   check=True, stdout=subprocess.DEVNULL)

def run(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit("audit bench: %s exited %d\n%s" % (
            " ".join(cmd), p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    return t

small = os.path.join(tmp, "small.txt")
with open(small, "w") as f:
    f.write("x\n")

def runbook(name, count):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write('runbook { name = "bench/audit" }\n'
                'step("reads", function()\n'
                '  for i = 1, %d do fs.read(%r) end\n'
                'end)\n' % (count, small))
    return path

rb_n = runbook("reads.lua", n)
psql("CREATE DATABASE auditbench")
url = base_url + "/auditbench"
sqlite = os.path.join(tmp, "audit.db")
# the floor: a log whose runbook.append() does nothing but answer, i.e.
# the round trip over loopback TCP and the function call, no lock, no insert
psql("CREATE DATABASE auditfloor")
floor_url = base_url + "/auditfloor"
run([rb, "run", runbook("one.lua", 1), "--audit", floor_url])  # creates the schema
psql("CREATE OR REPLACE FUNCTION runbook.append(p_run_id text, p_kind text, p_ts text,"
     " p_data text, OUT o_seq bigint, OUT o_hash text, OUT o_run_id text)"
     " LANGUAGE plpgsql AS $f$ BEGIN o_seq := 1; o_hash := ''; o_run_id :="
     " coalesce(p_run_id, 'floor'); END $f$", db="auditfloor")
variants = [("no audit", ["--no-audit"]), ("SQLite log", ["--audit", sqlite]),
            ("PostgreSQL log", ["--audit", url]),
            ("PG round trip", ["--audit", floor_url])]
times = {v: [] for v, _ in variants}
for i in range(runs + 1):  # round 0 warms up (and creates both logs)
    for v, flags in variants:
        t = run([rb, "run", rb_n] + flags)
        if i:
            times[v].append(t)
med = {v: statistics.median(ts) for v, ts in times.items()}
cost = {v: (med[v] - med["no audit"]) / n * 1e6 for v in med}

# b) 8 concurrent writers into one shared log
psql("CREATE DATABASE auditbench8")
url8 = base_url + "/auditbench8"
per = max(n // 8, 1)
rb_per = runbook("reads8.lua", per)
run([rb, "run", rb_per, "--audit", url8])  # creates the schema: not timed
rates = []
for _ in range(runs):
    t0 = time.perf_counter()
    procs = [subprocess.Popen([rb, "run", rb_per, "--audit", url8], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(8)]
    bad = [p.stderr.read().decode(errors="replace") for p in procs if p.wait() != 0]
    wall = time.perf_counter() - t0
    if bad:
        raise SystemExit("audit bench: a concurrent writer failed:\n" + bad[0][-2000:])
    rates.append(8 * (per + 3) / wall)  # a run: its actions, one step record, run start and end
verified = subprocess.run([rb, "audit", "verify", "--audit", url8], capture_output=True, text=True)

print("audit log cost per action, %d fs.read actions per run, median of %d runs" % (n, runs))
print("(%s, %s, %d CPUs; runbook %s)" % (platform.node(), platform.machine(), os.cpu_count(),
                                           os.environ["RB_SHOWN"]))
print()
print("%-16s %10s %18s" % ("", "run (ms)", "audit µs/action"))
for v, _ in variants:
    print("%-16s %10.1f %18s" % (v, med[v] * 1000,
                                 "-" if v == "no audit" else "%.1f" % cost[v]))
ratio = cost["PostgreSQL log"] / cost["SQLite log"] if cost["SQLite log"] > 0 else float("nan")
print()
print("PostgreSQL / SQLite audit cost per action: %.2fx" % ratio)
print("(\"PG round trip\": the same calls to a runbook.append() that only answers: the")
print(" loopback round trip and a function call, the floor of any append that is")
print(" committed before the runbook goes on)")
print()
print("8 concurrent writers into one PostgreSQL log, %d actions each:" % per)
print("  %.0f records appended per second (median of %d)" % (statistics.median(rates), runs))
print("  audit verify: %s" % (verified.stdout.strip() or verified.stderr.strip()))
if verified.returncode != 0:
    raise SystemExit("audit bench: the chain did not verify")
PY
cp "$tmp/audit_pg.txt" bench/results/audit_pg.txt
