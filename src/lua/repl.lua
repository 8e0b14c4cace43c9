-- The REPL's Lua side (the console itself is src/cmd_repl.c): how values
-- are shown, what TAB completes, and how `.save` turns the session's
-- statements into a runbook.
local rt = ...

local MAX_DEPTH, MAX_ITEMS, MAX_STRING = 4, 40, 240

local function fmt_bytes(n)
  if n < 1024 then return string.format("%d B", n) end
  if n < 1024 * 1024 then return string.format("%.1f KB", n / 1024) end
  return string.format("%.1f MB", n / 1048576)
end

local function fmt_ms(s)
  if type(s) ~= "number" then return "?" end
  if s < 1 then return string.format("%.0f ms", s * 1000) end
  return string.format("%.2f s", s)
end

local function lines_of(s)
  if s == "" then return "empty" end
  local n = select(2, s:gsub("\n", "")) + (s:sub(-1) == "\n" and 0 or 1)
  return string.format("%d line%s (%s)", n, n == 1 and "" or "s", fmt_bytes(#s))
end

-- results the primitives return, summarised on one line
local function summary(v)
  if type(v.status) == "number" and type(v.headers) == "table" and type(v.body) == "string" then
    return string.format("<http %d %s %s %s, %s>", v.status, tostring(v.method or "GET"),
                         tostring(v.url or "?"), fmt_ms(v.time), fmt_bytes(#v.body))
  end
  if math.type(v.code) == "integer" and type(v.stdout) == "string" and type(v.stderr) == "string" then
    return string.format("<exec exit %d, %s, stdout %s, stderr %s>", v.code, fmt_ms(v.time),
                         lines_of(v.stdout), lines_of(v.stderr))
  end
  return nil
end

local function quote(s)
  local shown = s
  local cut = #s > MAX_STRING
  if cut then shown = s:sub(1, MAX_STRING) end
  shown = string.format("%q", shown):gsub("\\\n", "\\n")
  if cut then
    shown = shown .. string.format(" … (%d more bytes; print(x) shows all)", #s - MAX_STRING)
  end
  return shown
end

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local show

local function show_table(t, depth, seen, indent)
  if seen[t] then return "<cycle>" end
  local s = summary(t)
  if s then return s end
  if depth >= MAX_DEPTH then return "{…}" end
  seen[t] = true
  local n = #t
  local keys = {}
  for k in pairs(t) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_order)
  if n == 0 and #keys == 0 then
    seen[t] = nil
    return "{}"
  end
  local parts = {}
  for i = 1, math.min(n, MAX_ITEMS) do
    parts[#parts + 1] = show(t[i], depth + 1, seen, indent .. "  ")
  end
  if n > MAX_ITEMS then parts[#parts + 1] = string.format("… (%d more)", n - MAX_ITEMS) end
  for i, k in ipairs(keys) do
    if i > MAX_ITEMS then
      parts[#parts + 1] = string.format("… (%d more keys)", #keys - MAX_ITEMS)
      break
    end
    local ks = is_ident(k) and k or ("[" .. show(k, depth + 1, seen, indent) .. "]")
    parts[#parts + 1] = ks .. " = " .. show(t[k], depth + 1, seen, indent .. "  ")
  end
  seen[t] = nil
  -- short and flat: one line; anything else, one entry per line
  local one = "{ " .. table.concat(parts, ", ") .. " }"
  if #one <= 80 and not one:find("\n") then return one end
  return "{\n" .. indent .. "  " .. table.concat(parts, ",\n" .. indent .. "  ") .. "\n" .. indent .. "}"
end

show = function(v, depth, seen, indent)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "table" then return show_table(v, depth, seen, indent) end
  if v == json.null then return "null" end
  if t == "userdata" or t == "function" or t == "thread" then
    local mt = getmetatable(v)
    if type(mt) == "table" and mt.__tostring then return "<" .. tostring(v) .. ">" end
    return "<" .. t .. ">"
  end
  return tostring(v)
end

-- rt.repl_show(n, ...) -> the n values, tab-separated as lua.c prints
-- them, or one per line when one of them takes several
function rt.repl_show(n, ...)
  local out, multi = {}, false
  for i = 1, n do
    out[i] = show((select(i, ...)), 0, {}, "")
    multi = multi or out[i]:find("\n") ~= nil
  end
  return table.concat(out, multi and "\n" or "\t")
end

-- ---- completion --------------------------------------------------------------

local KEYWORDS = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
                   "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
                   "true", "until", "while" }

-- the fields a value offers: a table's keys, its metatable's __index table
-- (a connection's methods), following __index chains a few levels
local function fields(v, out)
  local seen = 0
  while v ~= nil and seen < 4 do
    seen = seen + 1
    if type(v) == "table" then
      for k in next, v do
        if type(k) == "string" then out[k] = true end
      end
    end
    local mt = getmetatable(v)
    local idx = type(mt) == "table" and rawget(mt, "__index") or nil
    if type(idx) ~= "table" then break end
    v = idx
  end
  return out
end

-- rt.repl_complete(word, env) -> sorted candidates for the word at the cursor:
-- `doc` -> globals, `docker.re` -> docker's fields, `r:qu` -> r's methods.
-- Only names are looked up (rawget/__index tables): completing never runs code.
function rt.repl_complete(word, env)
  local base, sep, partial = word:match("^(.*)([.:])([%w_]*)$")
  local names = {}
  if base then
    local v = env
    for part in base:gmatch("[^.]+") do
      if not part:match("^[%a_][%w_]*$") or type(v) ~= "table" then return {} end
      local nv = rawget(v, part)
      if nv == nil then
        local mt = getmetatable(v)
        local idx = type(mt) == "table" and rawget(mt, "__index") or nil
        nv = type(idx) == "table" and rawget(idx, part) or nil
      end
      v = nv
    end
    if v == nil then return {} end
    fields(v, names)
  else
    partial = word
    fields(env, names)
    for _, k in ipairs(KEYWORDS) do names[k] = true end
  end
  local out = {}
  for k in pairs(names) do
    if k:sub(1, #partial) == partial and k:sub(1, 2) ~= "__" then
      out[#out + 1] = (base and (base .. sep) or "") .. k
    end
  end
  table.sort(out)
  return out
end

-- ---- .save ---------------------------------------------------------------------

-- string literals of a statement, with their positions: a small scanner
-- that knows Lua's quotes, long brackets and comments
local function string_literals(src)
  local out, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if c == "-" and src:sub(i, i + 1) == "--" then
      local eq = src:match("^%[(=*)%[", i + 2)
      if eq then
        local close = src:find("]" .. eq .. "]", i, true)
        i = close and close + #eq + 2 or n + 1
      else
        local nl = src:find("\n", i, true)
        i = nl and nl + 1 or n + 1
      end
    elseif c == "[" and src:match("^%[=*%[", i) then
      local eq = src:match("^%[(=*)%[", i)
      local close = src:find("]" .. eq .. "]", i, true)
      i = close and close + #eq + 2 or n + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then j = j + 2
        elseif d == c then break
        else j = j + 1 end
      end
      local ok, value = pcall(load("return " .. src:sub(i, j), "=literal", "t", {}))
      if ok and type(value) == "string" then
        out[#out + 1] = { first = i, last = j, value = value }
      end
      i = j + 1
    else
      i = i + 1
    end
  end
  return out
end

-- a param name for a literal: the table key it is given to, else what it
-- looks like
local function param_name(value, before)
  local key = before:match("([%a_][%w_]*)%s*=%s*$")
  if key then return key end
  if value:match("^%a[%w+.-]*://") then return "url" end
  if value:match("^/") or value:match("^%.%.?/") then return "path" end
  return "value"
end

-- Values worth a param: names of things (hosts, services, paths, URLs,
-- versions), not plain words like a command's name, not SQL.
local SQL = { SELECT = 1, INSERT = 1, UPDATE = 1, DELETE = 1, WITH = 1, CREATE = 1, DROP = 1,
              ALTER = 1, VACUUM = 1, BEGIN = 1, COMMIT = 1 }
local function liftable(v)
  local first = (v:match("^%s*(%a+)") or ""):upper()
  return #v >= 2 and #v <= 200 and not v:find("[\n ]") and v:find("[%d./:_-]") ~= nil and
         v:sub(1, 1) ~= "-" and not SQL[first]
end

local function lua_string(s)
  return (string.format("%q", s):gsub("\\\n", "\\n"))
end

-- rt.repl_save(statements, run_id) -> the text of a runbook.  statements:
-- { src, actions (count), expr (a bare expression), title (its first
-- action's words) } of the successful
-- statements, in order.  Those that acted become steps; definitions without
-- actions (helpers, assignments) stay at the top so the steps can use them;
-- bare expressions without actions (looking at a value) are left out.
-- Literal strings become params with their values as defaults.
function rt.repl_save(statements, run_id)
  local params, order, by_value = {}, {}, {}
  local function lift(src)
    local lits = string_literals(src)
    local out, pos = {}, 1
    for _, l in ipairs(lits) do
      if liftable(l.value) then
        local name = by_value[l.value]
        if not name then
          local base = param_name(l.value, src:sub(1, l.first - 1))
          name = base
          local k = 1
          while params[name] do k = k + 1; name = base .. "_" .. k end
          params[name] = l.value
          by_value[l.value] = name
          order[#order + 1] = name
        end
        out[#out + 1] = src:sub(pos, l.first - 1) .. "params." .. name
        pos = l.last + 1
      end
    end
    out[#out + 1] = src:sub(pos)
    return table.concat(out)
  end
  -- the session's globals (x = ..., function f()) become the file's
  -- locals, declared first: steps share them as upvalues, and `runbook
  -- check` sees nothing undefined
  local locals, seen = {}, {}
  local function declare(src)
    local names = src:match("^%s*function%s+([%a_][%w_]*)%s*%(")
    if not names then
      names = src:match("^%s*([%a_][%w_]*%s*[,%w_%s]*)=[^=]")
    end
    for name in (names or ""):gmatch("[%a_][%w_]*") do
      if not seen[name] and name ~= "local" then
        seen[name] = true
        locals[#locals + 1] = name
      end
    end
  end
  local top, steps = {}, {}
  for _, s in ipairs(statements) do
    if s.actions > 0 or not s.expr then declare(s.src) end
  end
  for _, s in ipairs(statements) do
    if s.actions > 0 then
      local body = lift(s.src)
      -- a bare expression that acted: as a statement when it is a call,
      -- else its value is kept in a local
      if s.expr and not load(body, "=save", "t", {}) then body = "local _ = " .. body end
      local title = (s.title or s.src):gsub("%s+", " "):sub(1, 70)
      steps[#steps + 1] = string.format("step(%s, function()\n  %s\nend)\n",
                                        lua_string(title), body:gsub("\n", "\n  "))
    elseif not s.expr then
      top[#top + 1] = lift(s.src)
    end
  end
  local p = {}
  for _, name in ipairs(order) do
    p[#p + 1] = string.format("    %s = { default = %s },", name, lua_string(params[name]))
  end
  return string.format([[
-- Saved from the runbook REPL session %s: one step per statement that acted,
-- literal values lifted into params.  Edit, then `runbook check` it.
runbook {
  name = "repl/%s",
  title = "REPL session %s",
  params = {
%s
  },
}

%s%s%s%s]], run_id, run_id, run_id, table.concat(p, "\n"),
    #locals > 0 and ("local " .. table.concat(locals, ", ") .. "\n\n") or "",
    table.concat(top, "\n"), #top > 0 and "\n\n" or "", table.concat(steps, "\n"))
end
