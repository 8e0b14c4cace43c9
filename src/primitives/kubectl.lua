-- The Lua half of kubectl: what `runbook run --dry-run --diff` shows for
-- kubectl.apply (src/primitives/kubectl.c's diff hook calls
-- rt.kubectl_apply_diff).
--
-- `kubectl diff` writes the live and the merged objects to $TMPDIR and runs
-- diff(1) on the two directories, which a rehearsal's confined processes
-- cannot do.  This asks the server the same two questions without a file:
--
--   live:   kubectl get -f FILE ... --ignore-not-found -o json   (a read)
--   merged: kubectl apply -f FILE ... --dry-run=server -o json   (the API
--           server runs the whole apply, admission included, with
--           dryRun=All: it answers with the result and persists nothing)
--
-- and diffs them as YAML, object by object, named as kubectl diff names its
-- files (group.version.Kind.namespace.name), with metadata.managedFields
-- left out as kubectl diff leaves them out.
local rt = ...

-- The items of kubectl's -o json output: a List's, or the one object.
local function items(decode, text)
  if not text:find("%S") then return {} end
  local doc = decode(text)
  if type(doc) ~= "table" then return {} end
  if doc.kind == "List" or (doc.kind or ""):match("List$") then return doc.items or {} end
  return { doc }
end

local function key_of(obj)
  local md = obj.metadata or {}
  local group, version = (obj.apiVersion or ""):match("^(.-)/?([^/]*)$")
  local k = {}
  for _, v in ipairs({ group, version, obj.kind or "", md.namespace or "", md.name or "" }) do
    if v ~= "" then k[#k + 1] = v end
  end
  return table.concat(k, ".")
end

local function without_managed_fields(obj)
  if obj and obj.metadata then obj.metadata.managedFields = nil end
  return obj
end

-- kubectl diff patches without apply's bookkeeping annotation (it computes
-- the change with annotate = false), so the merged object keeps the live
-- one's: the annotation is shown as it is, not as the apply would rewrite it.
local LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
local function as_kubectl_diff_merges(merged, live)
  local md = merged.metadata
  if not md then return merged end
  local was = live and live.metadata and live.metadata.annotations
  was = was and was[LAST_APPLIED]
  if md.annotations then
    md.annotations[LAST_APPLIED] = was
    if next(md.annotations) == nil then md.annotations = nil end
  end
  return merged
end

local function last_line(s)
  local last
  for line in (s or ""):gmatch("[^\n]+") do
    if line:find("%S") then last = line end
  end
  return last or "no output"
end

-- exec: the raw exec (no funnel: this is part of the apply's own action);
-- argv: the apply's command line as built for the call, ending "-o json";
-- info: { stdin, timeout }; codec: { decode, encode (YAML), unified }.
-- Returns the diff ("" when the server says nothing would change), or nil
-- and why there is none.
function rt.kubectl_apply_diff(exec, argv, info, codec)
  local dry, get = {}, {}
  for _, w in ipairs(argv) do
    dry[#dry + 1] = w
    if w == "apply" and #dry == 2 then dry[#dry + 1] = "--dry-run=server" end
    -- get takes the same file and scope, not apply's own flags
    if #get == 1 and w == "apply" then
      get[#get + 1] = "get"
    elseif w ~= "--server-side" and w ~= "--force-conflicts" then
      get[#get + 1] = w
    end
  end
  table.insert(get, #get - 1, "--ignore-not-found") -- before the final -o json
  local opts = { stdin = info.stdin, check = false, timeout = info.timeout }
  local merged = exec(dry, opts)
  if merged.code ~= 0 then
    return nil, "the server refused the rehearsed apply: " .. last_line(merged.stderr)
  end
  local live = exec(get, opts)
  if live.code ~= 0 then
    return nil, "the live objects could not be read: " .. last_line(live.stderr)
  end
  local now = {}
  for _, obj in ipairs(items(codec.decode, live.stdout)) do
    now[key_of(obj)] = without_managed_fields(obj)
  end
  local out = {}
  for _, obj in ipairs(items(codec.decode, merged.stdout)) do
    local k = key_of(obj)
    local before = now[k] and codec.encode(now[k]) or ""
    local after = codec.encode(as_kubectl_diff_merges(without_managed_fields(obj), now[k]))
    out[#out + 1] = codec.unified(now[k] and "live/" .. k or "/dev/null", "merged/" .. k,
                                  before, after)
  end
  return table.concat(out)
end
