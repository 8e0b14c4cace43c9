-- backup: retention and checksums for backup files (the "verify recent
-- backups", "keep the last N" chores of every reference runbook).
--
--   local backup = require "backup"
--   local all = backup.list(params.dir .. "/app-*.dump")   -- newest first
--   local plan = backup.prune(params.dir .. "/app-*.dump", { keep_last = 7, keep_days = 30 })
--   log.info("kept %d, deleted %d", #plan.keep, #plan.delete)
--   backup.verify(all[1].path)                -- against app-....dump.manifest.json
--   backup.verify(path, dir .. "/SHA256SUMS") -- or a sha256sum(1) file
--
-- A backup is kept when it is one of the newest keep_last, or younger than
-- keep_days days; everything else matching the pattern is deleted, with its
-- manifest.  The newest backup is never deleted, and a call that gives
-- neither rule is refused rather than guessed.  backup.plan() only computes;
-- backup.prune() deletes through fs.remove, so dry-run prints each
-- `would: fs remove ...` and deletes nothing.
-- mutates: backup.prune
local support = require "stdlib_support"
local list = support.list
local fail, public = support.errors("backup")

local M = {}

local MANIFEST = ".manifest.json"

local function is_backup(path)
  return path:sub(-#MANIFEST) ~= MANIFEST and not path:match("%.partial$")
end

-- backup.list(pattern) -> { { path, name, size, mtime, age_days }, ... } newest first
local function list_backups(pattern)
  if type(pattern) ~= "string" then fail("backup.list: expected a glob pattern, got %s", type(pattern)) end
  local t = now()
  local out = list()
  for _, path in ipairs(fs.glob(pattern)) do
    if is_backup(path) then
      local st = fs.stat(path, { check = false })
      if st and st.type == "file" then
        out[#out + 1] = { path = path, name = path:match("[^/]+$"), size = st.size,
                          mtime = st.mtime, age_days = (t - st.mtime) / 86400 }
      end
    end
  end
  table.sort(out, function(a, b)
    if a.mtime ~= b.mtime then return a.mtime > b.mtime end
    return a.path > b.path
  end)
  return out
end

-- backup.plan(list_or_pattern, { keep_last, keep_days }) -> { keep, delete }
local function plan(backups, opts)
  opts = opts or {}
  if type(backups) == "string" then backups = list_backups(backups) end
  if type(backups) ~= "table" then fail("backup.plan: expected a list or a glob pattern") end
  local keep_last, keep_days = opts.keep_last, opts.keep_days
  if keep_last == nil and keep_days == nil then
    fail("backup.plan: say what to keep: keep_last = N and/or keep_days = D")
  end
  if keep_last ~= nil and (math.type(keep_last) ~= "integer" or keep_last < 1) then
    fail("backup.plan: keep_last must be a whole number >= 1, got %s", tostring(keep_last))
  end
  if keep_days ~= nil and (type(keep_days) ~= "number" or keep_days < 0) then
    fail("backup.plan: keep_days must be a number of days >= 0, got %s", tostring(keep_days))
  end
  local sorted = {}
  for i, b in ipairs(backups) do sorted[i] = b end
  table.sort(sorted, function(a, b) -- newest first; equal times: by name, as backup.list
    if a.mtime ~= b.mtime then return a.mtime > b.mtime end
    return a.path > b.path
  end)
  local r = { keep = list(), delete = list() }
  for i, b in ipairs(sorted) do
    local keep = i == 1                                       -- never the newest
      or (keep_last and i <= keep_last)
      or (keep_days and b.age_days < keep_days)
    table.insert(keep and r.keep or r.delete, b)
  end
  return r
end

-- backup.prune(pattern, { keep_last, keep_days }) -> the plan, carried out
local function prune(pattern, opts)
  local p = plan(pattern, opts)
  for _, b in ipairs(p.delete) do
    fs.remove(b.path)
    if fs.exists(b.path .. MANIFEST) then fs.remove(b.path .. MANIFEST) end
  end
  return p
end

-- the expected sha256 of path from a manifest: runbook's JSON manifest, or
-- a sha256sum(1) file ("<hex>  name" or "<hex> *name" per line)
local function expected_sum(path, manifest)
  local text = fs.read(manifest)
  if manifest:sub(-5) == ".json" then
    local ok, m = pcall(json.decode, text)
    if not ok or type(m) ~= "table" then fail("backup.verify: %s is not valid JSON", manifest) end
    return m.sha256
  end
  local name = path:match("[^/]+$")
  local found -- the last line for the file wins: a re-made backup appends its new sum
  for line in text:gmatch("[^\n]+") do
    local hex, file = line:match("^(%x+)%s+%*?(.-)%s*$")
    if hex and (file == name or file == path or file:match("[^/]+$") == name) then
      found = hex:lower()
    end
  end
  return found
end

-- backup.verify(path [, manifest [, { check = true }]]) -> { ok, sha256, expected, problem }
local function verify(path, manifest, opts)
  if type(path) ~= "string" then fail("backup.verify: expected a file path, got %s", type(path)) end
  if type(manifest) == "table" then opts, manifest = manifest, nil end
  opts = opts or {}
  manifest = manifest or path .. MANIFEST
  local r = { path = path, manifest = manifest }
  r.expected = expected_sum(path, manifest)
  r.sha256 = fs.sha256(path)
  if not r.expected then
    r.problem = string.format("%s has no checksum for %s", manifest, path:match("[^/]+$"))
  elseif r.expected ~= r.sha256 then
    r.problem = string.format("sha256 %s differs from %s in %s", r.sha256, r.expected, manifest)
  end
  r.ok = r.problem == nil
  if not r.ok and opts.check ~= false then fail("backup.verify %s: %s", path, r.problem) end
  return r
end

-- the module's functions, each checked against its signature first
local export = support.declarer(M, "backup.", public)

export("list", "pattern:str", "", list_backups)
export("plan", "backups:table|str opts?:opts", "keep_last keep_days", plan)
export("prune", "backups:table|str opts?:opts", "keep_last keep_days", prune)
export("verify", "path:str manifest?:str opts?:opts", "check", verify)
return M
