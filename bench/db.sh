#!/usr/bin/env bash
# PostgreSQL statements: runbook's db module against psql, in one run.
#
#   bash bench/db.sh                  # median of BENCH_RUNS runs each (default 5)
#   BENCH_RUNS=11 bash bench/db.sh
#   BENCH_N=2000 bash bench/db.sh     # statements per run (default 10 000)
#   RUNBOOK_BIN=build-asan/runbook bash bench/db.sh
#
# Against a throw-away local PostgreSQL (tests/fixtures/pg_cluster.py: fsync,
# full_page_writes and synchronous_commit off), both clients over its unix
# socket, one statement per round-trip:
# a) inserts: 10 000 single-row INSERTs into bench(id int primary key, v text)
#    in one transaction: a runbook, conn:transaction + c:exec(sql, $1, $2),
#    against `psql -f` of BEGIN; 10 000 INSERTs with literal values; COMMIT;
#    the table is TRUNCATEd before each run and must hold 10 000 rows after;
#    for context also a runbook with the values in the SQL text, as psql's
#    file has them (each text is new to the driver, which proves it a write)
# b) queries: 10 000 `c:query("SELECT v FROM bench WHERE id = $1", i)`
#    (autocommit) against `psql -f` of the same 10 000 SELECTs, literal ids;
#    the runbook checks it got 10 000 rows, psql's output is checked once
# runbook runs both with --no-audit and with the audit on, since every
# statement is an audited action.  "net" subtracts the start-up: a run of
# the same client that connects and runs one SELECT 1.
#
# Wall time of whole processes (python3 time.perf_counter around
# subprocess.run), the commands taking turns after a warm-up round; median of
# the runs.  No thresholds: it reports.
# The table is also written to bench/results/db.txt.
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

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runbook-dbbench.XXXXXX")
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
# a copy, so that a rebuild of build/ during the runs cannot change or remove
# the binary under test (the embedded Lua goes with it; nothing here requires
# the stdlib)
cp "$rb" "$tmp/runbook"

pg_started=1
python3 tests/fixtures/pg_cluster.py start "$tmp/pg" >"$tmp/pg.env"
# shellcheck disable=SC1091
. "$tmp/pg.env"   # PGHOST (the socket dir), PGPORT, PGUSER, PGDATABASE, ...
# the same unix socket psql uses through PGHOST/PGPORT
export BENCH_URL="postgresql://$PGUSER@/$PGDATABASE?host=$PGHOST&port=$PGPORT"

mkdir -p bench/results
RB="$tmp/runbook" RB_SHOWN="$rb" TMP="$tmp" python3 - <<'PY' | tee "$tmp/db.txt"
import os, platform, statistics, subprocess, time

rb, tmp = os.environ["RB"], os.environ["TMP"]
runs = int(os.environ.get("BENCH_RUNS", "5"))
n = int(os.environ.get("BENCH_N", "10000"))
audit = os.path.join(tmp, "audit.db")

def f(name):
    return os.path.join(tmp, name)

def run(cmd, what=None, quiet=False):
    """quiet: stdout to /dev/null (the timed runs; runbook says why it failed
    on stdout, so the warm-up round keeps it)"""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
                       stderr=subprocess.PIPE if quiet else subprocess.STDOUT)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit("db bench: %s exited %d\n%s" % (
            what or " ".join(cmd), p.returncode,
            ((p.stderr if quiet else p.stdout) or b"").decode(errors="replace")[-3000:]))
    return t, (p.stdout or b"").decode(errors="replace")

PSQL = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"]

def sql(statement):
    return run(PSQL + ["-A", "-t", "-c", statement])[1].strip()

# ---- the files ------------------------------------------------------------------
def write(name, text):
    with open(f(name), "w") as fh:
        fh.write(text)
    return f(name)

rb_ins = write("inserts.lua", '''runbook { name = "bench/db-inserts" }
step("%(n)d inserts", function()
  local c = db.open(env("BENCH_URL"))
  c:transaction(function(c)
    for i = 1, %(n)d do c:exec("INSERT INTO bench (id, v) VALUES ($1, $2)", i, "v" .. i) end
  end)
end)
''' % {"n": n})
# the same with the values in the text, as psql's file has them: every
# statement is a new text to the driver (context: see the note printed below)
rb_lit = write("inserts_literal.lua", '''runbook { name = "bench/db-inserts-literal" }
step("%(n)d inserts", function()
  local c = db.open(env("BENCH_URL"))
  c:transaction(function(c)
    for i = 1, %(n)d do
      c:exec(("INSERT INTO bench (id, v) VALUES (%%d, 'v%%d')"):format(i, i))
    end
  end)
end)
''' % {"n": n})
rb_sel = write("queries.lua", '''runbook { name = "bench/db-queries" }
step("%(n)d queries", function()
  local c = db.open(env("BENCH_URL"))
  local got = 0
  for i = 1, %(n)d do got = got + #c:query("SELECT v FROM bench WHERE id = $1", i) end
  if got ~= %(n)d then error(("%(n)d queries: %%d rows"):format(got)) end
end)
''' % {"n": n})
rb_base = write("connect.lua", '''runbook { name = "bench/db-connect" }
step("connect", function()
  local c = db.open(env("BENCH_URL"))
  c:query("SELECT 1")
end)
''')
psql_ins = write("inserts.sql", "BEGIN;\n" + "".join(
    "INSERT INTO bench (id, v) VALUES (%d, 'v%d');\n" % (i, i) for i in range(1, n + 1))
    + "COMMIT;\n")
psql_sel = write("queries.sql", "".join(
    "SELECT v FROM bench WHERE id = %d;\n" % i for i in range(1, n + 1)))
psql_base = write("connect.sql", "SELECT 1;\n")

def rbrun(lua, audited):
    return [rb, "run", lua] + (["--audit", audit] if audited else ["--no-audit"])

def psqlrun(path):
    return PSQL + ["-f", path]

sql("DROP TABLE IF EXISTS bench")
sql("CREATE TABLE bench (id int PRIMARY KEY, v text)")

want = "%d|1|%d" % (n, n)
def check_rows(what):
    got = sql("SELECT count(*), min(id), max(id) FROM bench")
    if got != want:
        raise SystemExit("db bench: after %s the table holds %s (count|min|max), not %s"
                         % (what, got, want))

# psql's answers to the SELECTs, checked once (the timed runs send them to
# /dev/null, as one would)
run(psqlrun(psql_ins))
check_rows("psql -f inserts.sql")
out = run(PSQL + ["-A", "-t", "-f", psql_sel])[1].split()
if out != ["v%d" % i for i in range(1, n + 1)]:
    raise SystemExit("db bench: psql -f queries.sql answered %d lines, not v1..v%d"
                     % (len(out), n))

# ---- the runs -------------------------------------------------------------------
# inserts first in each round (each TRUNCATEs, runs, checks 10 000 rows), so
# the queries always find a full table
cmds = {
    "ins_na":    (rbrun(rb_ins, False), "ins"),
    "ins_au":    (rbrun(rb_ins, True), "ins"),
    "ins_psql":  (psqlrun(psql_ins), "ins"),
    "ins_lit":   (rbrun(rb_lit, False), "ins"),
    "sel_na":    (rbrun(rb_sel, False), None),
    "sel_au":    (rbrun(rb_sel, True), None),
    "sel_psql":  (psqlrun(psql_sel), None),
    "base_na":   (rbrun(rb_base, False), None),
    "base_au":   (rbrun(rb_base, True), None),
    "base_psql": (psqlrun(psql_base), None),
}
samples = {k: [] for k in cmds}
for r in range(runs + 1):  # round 0 warms up (page cache, the audit database)
    for k, (cmd, kind) in cmds.items():
        if kind == "ins":
            sql("TRUNCATE bench")
        t, _ = run(cmd, k, quiet=r > 0)
        if kind == "ins":
            check_rows(k)
        if r:
            samples[k].append(t)
t = {k: statistics.median(v) for k, v in samples.items()}

ver = sql("SHOW server_version")
print("runbook db — %s, %s, %d CPUs, median of %d runs" %
      (time.strftime("%Y-%m-%d"), platform.platform(terse=True), os.cpu_count() or 0, runs))
print("binary: %s; PostgreSQL %s (pg_cluster.py: fsync/synchronous_commit off), "
      "both clients over its unix socket" % (os.environ["RB_SHOWN"], ver))
print()
fmt = "  %-42s %9s %9s %12s %8s %10s"
print(fmt % ("", "wall", "µs/stmt", "net µs/stmt", "ratio", "net ratio"))
print(fmt % ("", "-" * 9, "-" * 9, "-" * 12, "-" * 8, "-" * 10))
net = {}
for case, title, rbname, psqlname in (
        ("ins", "a) %d INSERTs, one transaction" % n,
         "runbook c:exec(sql, $1, $2)", "psql -f, literal values"),
        ("sel", "b) %d SELECT round-trips" % n,
         "runbook c:query(sql, $1)", "psql -f, literal ids")):
    print(title)
    base = {"na": t["base_na"], "au": t["base_au"], "psql": t["base_psql"],
            "lit": t["base_na"]}
    rows = [("na", rbname + ", --no-audit"), ("au", rbname + ", audit on")]
    if case == "ins":
        rows.append(("lit", "runbook, values in SQL text, --no-audit"))
    rows.append(("psql", psqlname))
    for suffix, _ in rows:
        net[case, suffix] = (t[case + "_" + suffix] - base[suffix]) / n
    for suffix, name in rows:
        k = case + "_" + suffix
        mine = suffix != "psql"
        print(fmt % (name, "%.3f s" % t[k], "%.1f" % (t[k] / n * 1e6),
                     "%.1f" % (net[case, suffix] * 1e6),
                     "%.2fx" % (t[k] / t[case + "_psql"]) if mine else "",
                     "%.2fx" % (net[case, suffix] / net[case, "psql"]) if mine else ""))
    print()
print("ratio: runbook / psql wall time; net: less the start-up (connect + SELECT 1):")
print("  runbook --no-audit %.1f ms, audit on %.1f ms; psql %.1f ms"
      % (t["base_na"] * 1e3, t["base_au"] * 1e3, t["base_psql"] * 1e3))
print("audit cost per statement: inserts %.1f µs, queries %.1f µs (audit on - --no-audit)"
      % ((net["ins", "au"] - net["ins", "na"]) * 1e6, (net["sel", "au"] - net["sel", "na"]) * 1e6))
print("values in the SQL text: each statement is a text the driver has not seen, so each is")
print("  first proved a write (a savepoint, SET LOCAL transaction_read_only, the statement")
print("  refused, ROLLBACK TO / RELEASE) before it runs; with $1, $2 that happens once.")
print("  Every :query is sent between BEGIN READ ONLY and COMMIT (one pipelined round-trip).")
spread, worst = max(((max(v) - min(v)) / statistics.median(v), k) for k, v in samples.items())
if spread > 0.5:
    print("note: runs varied by up to %.0f%% around the median (%s); the machine was busy, "
          "so read the ratios with care (a larger BENCH_RUNS helps)" % (spread * 100, worst))
PY
# only a complete run replaces the last results
cp "$tmp/db.txt" bench/results/db.txt
echo "(written to bench/results/db.txt)"
