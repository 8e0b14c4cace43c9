-- examples/pg-replication-lag.lua: a PostgreSQL streaming replica is behind
-- its primary -- measure the lag from both ends, find why, let it catch up.
--
-- Translated from "Runbook: PostgreSQL Replication Lag" of the grokdevops
-- wiki (the `source` below); the causes and thresholds of pganalyze's
-- "Replication - High Lag" check (https://pganalyze.com/docs/checks/replication/high_lag)
-- fill in what the standby itself can be blamed for.  Step by step:
--
--   1 "Measure the lag on the primary"   <- Quick Assessment and Step 1:
--     pg_stat_replication, pg_wal_lsn_diff(sent_lsn, replay_lsn), replay_lag;
--     an empty result means the replica disconnected (-> Step 4).
--   2 "Check the lag on the replica"     <- Step 2: is the replica applying
--     WAL or only receiving it (receive vs replay LSN, the last replayed
--     transaction's age); Step 4 (connectivity): pg_stat_wal_receiver.
--   3 "Find what holds replay back"      <- pganalyze's common causes:
--     long-running transactions on the standby (and the startup process
--     waiting for them), WAL not sent (network), replay slower than the
--     primary writes (underpowered standby).  A replay paused with
--     pg_wal_replay_pause() -- left behind by an investigation or a backup
--     script -- is this runbook's own addition: the source's Step 2 test
--     ("receiving but not applying") is how it shows.
--   4 "Resume WAL replay"                 (mitigation, after confirm())
--   5 "Cancel the queries holding replay back" (pganalyze: tune or end
--     long-running transactions on the standby; off unless
--     --param cancel_queries=true, and asked query by query)
--   6 "Verify the replica catches up": it replays up to where the primary
--     was after the fix (the source's Step 1 question: is the backlog
--     draining?); 7 "Verdict": fails, naming the cause, when the replica is
--     still behind (the source's escalation: page if not resolved in 30 min).
--
-- Every diagnosis is a catalog read, run for real in --dry-run; resuming
-- replay (pg_wal_replay_resume) and cancelling (pg_cancel_backend) are
-- changes, shown as `would:` there and never executed.
--
--   runbook run examples/pg-replication-lag.lua --dry-run \
--       --param primary=postgres://postgres@db1/postgres --param replica=postgres://postgres@db2/postgres
--   runbook run examples/pg-replication-lag.lua --yes --param cancel_queries=true ...

runbook {
  name        = "examples/pg-replication-lag",
  title       = "PostgreSQL replication lag: measure it, find the cause, let the replica catch up",
  description = [[Measures a streaming replica's lag from the primary (pg_stat_replication) and from
the replica (receive vs replay LSN), finds why it is behind (disconnected, replay paused, queries on
the standby holding replay back, WAL not sent, replay too slow), resumes a paused replay and
optionally cancels the blocking queries, then waits for the replica to catch up.]],
  source      = "https://grokdatum.github.io/grokdevops-wiki/library/runbooks/databases/postgres-replication-lag (Runbook: PostgreSQL Replication Lag)",
  severity    = "P2",
  tags        = { "example", "postgresql", "replication", "incident" },
  mutates     = { "resumes WAL replay on the replica (pg_wal_replay_resume)",
                  "cancels long-running queries on the replica (pg_cancel_backend), when asked" },
  params = {
    primary          = { default = env("PRIMARY_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
                         help = "the primary (a role that can read pg_stat_replication: pg_monitor)" },
    replica          = { default = env("REPLICA_URL", "postgres://postgres@127.0.0.1:5433/postgres"),
                         help = "the lagging replica (superuser, or pg_monitor + EXECUTE on pg_wal_replay_resume)" },
    standby          = { default = "", help = "the replica's application_name in pg_stat_replication (empty: every standby)" },
    max_lag_bytes    = { type = "number", default = 100 * 1024 * 1024,
                         help = "WAL the replica may be behind, bytes (the source's alert: 100 MB)" },
    max_lag_seconds  = { type = "number", default = 30, help = "replay lag that is too much, seconds (the source's alert: 30 s)" },
    long_query_seconds = { type = "number", default = 60,
                         help = "a transaction on the replica open longer than this may hold replay back" },
    resume_replay    = { type = "boolean", default = true, help = "resume WAL replay when it is paused (after confirm)" },
    cancel_queries   = { type = "boolean", default = false,
                         help = "cancel the long-running queries on the replica that hold replay back (after confirm)" },
    catch_up_timeout = { type = "number", default = 300, help = "seconds to wait for the replica to catch up after a fix" },
  },
}

-- bytes as a person reads them: 812 B, 64.0 kB, 1.6 MB
local function mb(bytes)
  bytes = bytes or 0
  if bytes < 1024 then return string.format("%d B", bytes) end
  if bytes < 1048576 then return string.format("%.1f kB", bytes / 1024) end
  return string.format("%.1f MB", bytes / 1048576)
end

step("Measure the lag on the primary", {
  description = "Quick Assessment + Step 1: pg_stat_replication on the primary, bytes between sent " ..
                "and replayed WAL, replay_lag; no row means the replica disconnected.",
}, function()
  local conn <close> = db.open(params.primary)
  local rows = conn:query([[
    SELECT application_name, client_addr::text AS client_addr, state, sync_state,
           pg_wal_lsn_diff(pg_current_wal_lsn(), sent_lsn)::bigint AS unsent_bytes,
           pg_wal_lsn_diff(sent_lsn, replay_lsn)::bigint AS lag_bytes,
           pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS behind_bytes,
           COALESCE(extract(epoch FROM replay_lag), 0)::float8 AS replay_lag_s,
           pg_current_wal_lsn()::text AS primary_lsn, replay_lsn::text AS replay_lsn
      FROM pg_stat_replication
     WHERE $1::text = '' OR application_name = $1::text
     ORDER BY application_name]], params.standby)
  state.standbys = #rows
  state.behind_bytes, state.replay_lag_s, state.unsent_bytes = 0, 0, 0
  for _, r in ipairs(rows) do
    log.info("%-16s %-15s %-9s %-5s behind %s (sent but not replayed %s), replay_lag %.1f s",
             r.application_name, r.client_addr == db.null and "local" or r.client_addr, r.state,
             r.sync_state, mb(r.behind_bytes), mb(r.lag_bytes), r.replay_lag_s)
    state.behind_bytes = math.max(state.behind_bytes, r.behind_bytes)
    state.unsent_bytes = math.max(state.unsent_bytes, r.unsent_bytes)
    state.replay_lag_s = math.max(state.replay_lag_s, r.replay_lag_s)
    state.primary_lsn = r.primary_lsn
    if r.state ~= "streaming" then state.not_streaming = r.state end
  end
  state.disconnected = #rows == 0
  state.lagging = state.disconnected or state.not_streaming ~= nil
                  or state.behind_bytes > params.max_lag_bytes
                  or state.replay_lag_s > params.max_lag_seconds
  if state.disconnected then
    log.error("no standby%s in pg_stat_replication: the replica is not connected (Step 4)",
              params.standby ~= "" and (" " .. params.standby) or "")
  elseif state.lagging then
    log.warn("replica lag %s / %.1f s is above %s / %d s", mb(state.behind_bytes), state.replay_lag_s,
             mb(params.max_lag_bytes), params.max_lag_seconds)
  else
    log.info("replica lag %s / %.1f s is within %s / %d s: nothing to do", mb(state.behind_bytes),
             state.replay_lag_s, mb(params.max_lag_bytes), params.max_lag_seconds)
  end
end)

step("Check the lag on the replica", {
  description = "Step 2: is the replica receiving WAL and applying it (receive vs replay LSN, " ..
                "age of the last replayed transaction); Step 4: its WAL receiver.",
  when = function() return state.lagging end,
}, function()
  local conn <close> = db.open(params.replica)
  local rec = conn:query("SELECT pg_is_in_recovery() AS in_recovery")[1]
  check(rec.in_recovery, "%s is not in recovery: it is not a replica (promoted?)", params.replica)
  local r = conn:query([[
    SELECT pg_is_wal_replay_paused() AS paused,
           COALESCE(pg_last_wal_receive_lsn()::text, '') AS receive_lsn,
           COALESCE(pg_last_wal_replay_lsn()::text, '') AS replay_lsn,
           COALESCE(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::bigint
             AS unapplied_bytes,
           COALESCE(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)::float8
             AS last_replay_age_s]])[1]
  state.paused, state.unapplied_bytes = r.paused, r.unapplied_bytes
  log.info("received up to %s, replayed up to %s: %s received but not applied; last replayed " ..
           "transaction %.0f s ago%s", r.receive_lsn, r.replay_lsn, mb(r.unapplied_bytes),
           r.last_replay_age_s, r.paused and "; replay is PAUSED" or "")
  local wr = conn:query("SELECT status, sender_host, sender_port FROM pg_stat_wal_receiver")
  state.receiving = #wr > 0 and wr[1].status == "streaming"
  if #wr == 0 then
    log.error("no WAL receiver running on the replica: check primary_conninfo, the network, and " ..
              "the replica's log for 'could not connect' / 'requested WAL segment has already been removed'")
  else
    log.info("WAL receiver %s from %s:%s", wr[1].status, tostring(wr[1].sender_host), tostring(wr[1].sender_port))
  end
end)

step("Find what holds replay back", {
  description = "pganalyze's common causes: long-running transactions on the standby, WAL not sent " ..
                "(network), replay slower than the primary writes; and a paused replay.",
  when = function() return state.lagging end,
}, function()
  local conn <close> = db.open(params.replica)
  local startup = conn:query([[
    SELECT COALESCE(wait_event_type, '') AS wait_event_type, COALESCE(wait_event, '') AS wait_event
      FROM pg_stat_activity WHERE backend_type = 'startup']])[1]
  if startup then
    log.info("startup (replay) process waits on: %s %s", startup.wait_event_type, startup.wait_event)
  end
  local long = conn:query([[
    SELECT pid, usename::text AS usename, COALESCE(application_name, '') AS application_name,
           state, extract(epoch FROM now() - xact_start)::float8 AS xact_s, left(query, 120) AS query
      FROM pg_stat_activity
     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
       AND now() - xact_start > make_interval(secs => $1)
     ORDER BY xact_start]], params.long_query_seconds)
  state.blockers = {}
  for _, q in ipairs(long) do
    state.blockers[#state.blockers + 1] = q.pid
    log.warn("pid %d (%s, %s) has had a transaction open %.0f s: %s", q.pid, q.usename,
             q.state, q.xact_s, q.query)
  end
  local blocked = startup and (startup.wait_event_type == "Lock"
                               or startup.wait_event:find("^RecoveryConflict") ~= nil)
  if state.disconnected or state.receiving == false then
    state.cause = "disconnected"
  elseif state.paused then
    state.cause = "replay_paused"
  elseif #state.blockers > 0 and (blocked or state.unapplied_bytes > 0) then
    state.cause = "replica_queries"
  elseif state.unsent_bytes > params.max_lag_bytes then
    state.cause = "wal_not_sent"
  elseif state.unapplied_bytes > 0 then
    state.cause = "replay_slow"
  else
    state.cause = "unknown"
  end
  local advice = {
    disconnected    = "the replica is not streaming: fix its connection to the primary (Step 4)",
    replay_paused   = "WAL replay is paused on the replica (pg_wal_replay_pause): resume it",
    replica_queries = "long-running transactions on the replica hold replay back: end them, or " ..
                      "tune max_standby_streaming_delay",
    wal_not_sent    = "the primary has not sent the WAL: network bandwidth between primary and replica",
    replay_slow     = "the replica receives WAL but applies it slower than the primary writes: " ..
                      "its I/O and CPU (an underpowered standby)",
    unknown         = "no cause found: watch whether the lag grows or drains",
  }
  log.warn("cause: %s -- %s", state.cause, advice[state.cause])
end)

step("Resume WAL replay", {
  description = "Mitigation for a paused replay: SELECT pg_wal_replay_resume() on the replica, " ..
                "after confirm().",
  when = function() return state.cause == "replay_paused" and params.resume_replay end,
}, function()
  if not confirm("Resume WAL replay on " .. params.replica) then
    log.warn("replay left paused")
    return
  end
  local conn <close> = db.open(params.replica)
  conn:query("SELECT pg_wal_replay_resume()")
  state.mitigated = "resumed replay"
end)

step("Cancel the queries holding replay back", {
  description = "Mitigation for long-running transactions on the replica: pg_cancel_backend(pid) " ..
                "for each, asked one by one (--param cancel_queries=true).",
  when = function() return state.cause == "replica_queries" and params.cancel_queries end,
}, function()
  local conn <close> = db.open(params.replica)
  state.cancelled = {}
  for _, pid in ipairs(state.blockers) do
    if confirm(string.format("Cancel the query of pid %d on the replica", pid)) then
      conn:query("SELECT pg_cancel_backend($1)", pid)
      state.cancelled[#state.cancelled + 1] = pid
    end
  end
  if #state.cancelled > 0 then
    state.mitigated = string.format("cancelled %d quer%s", #state.cancelled,
                                    #state.cancelled == 1 and "y" or "ies")
  end
end)

step("Verify the replica catches up", {
  description = "The replica replays up to where the primary was before the fix; then the lag " ..
                "is measured again.",
  -- a rehearsal changed nothing: there is nothing to wait for
  when = function() return state.mitigated ~= nil and not dry_run() end,
}, function()
  local primary <close> = db.open(params.primary)
  local target = primary:query("SELECT pg_current_wal_lsn()::text AS lsn")[1].lsn
  local replica <close> = db.open(params.replica)
  state.caught_up = pcall(wait_until, function()
    return replica:query("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done", target)[1].done
  end, { timeout = params.catch_up_timeout, every = 1, what = "replica replayed up to " .. target })
  if state.caught_up then
    log.info("the replica has replayed up to %s (%s)", target, state.mitigated)
  else
    log.error("the replica has not replayed up to %s after %d s", target, params.catch_up_timeout)
  end
end)

step("Verdict", function()
  if not state.lagging then return end
  if state.caught_up then
    log.info("replication lag resolved: %s", state.mitigated)
    return
  end
  if state.mitigated and dry_run() then
    log.info("rehearsal: a live run would have %s, then waited for the replica", state.mitigated)
    return
  end
  check(false, "the replica is still behind (%s, cause: %s): escalate -- the source pages after 30 minutes",
        state.disconnected and "disconnected" or mb(state.behind_bytes), state.cause or "unknown")
end)
