-- `runbook check`: unknown keys in the literal option tables of calls, found
-- without running anything (issue 16: `{ timout = 1 }` was ignored).  Runs
-- in check's plain Lua state, beside luacheck, whose parser reads the
-- source; the signatures are the engine's own declarations (the rows' sig
-- and options, signature.wrap), so this never disagrees with the check a
-- call meets when it runs.  A call is resolved by name only: a global
-- (`exec`, `http.get`) or a local bound to `require "module"`; a method, or
-- a name the file declares as a local otherwise, is left to run time.
--
-- Arguments: the source, { name = { sig, options } }, bind(sig, kinds) ->
-- { [i] = true for the options argument } or nil, near(word, options) ->
-- the closest option or nil.  Returns a list of { line, column, msg }.
local src, sigs, bind, near = ...
local decoder = require "luacheck.decoder"
local parser = require "luacheck.parser"

local offsets, lengths = {}, {}
local ok, ast = pcall(parser.parse, decoder.decode(src), offsets, lengths)
if not ok then return {} end -- a syntax error: luacheck has said so

-- the argument kinds of signature.h's binder (SIG_NIL ... SIG_UNKNOWN)
local NIL, STR, NUM, INT, BOOL, TABLE, FN, UNKNOWN = 0, 1, 2, 3, 4, 5, 6, 8
local function kind(node)
  local tag = node.tag
  if tag == "String" then return STR end
  if tag == "Number" then
    return math.type(tonumber(node[1])) == "integer" and INT or NUM
  end
  if tag == "True" or tag == "False" then return BOOL end
  if tag == "Table" then return TABLE end
  if tag == "Function" then return FN end
  if tag == "Nil" then return NIL end
  return UNKNOWN
end

-- names bound to `require "m"`, and every other local the file declares
local module_of, declared = {}, {}
local function is_require(e)
  return e and e.tag == "Call" and e[1].tag == "Id" and e[1][1] == "require"
    and e[2] and e[2].tag == "String" and e[2][1]
end
local function declare(ids)
  for _, id in ipairs(ids or {}) do
    if id.tag == "Id" then declared[id[1]] = true end
  end
end
local function scan(node)
  if type(node) ~= "table" then return end
  local tag = node.tag
  if tag == "Local" then
    for i, id in ipairs(node[1]) do
      local m = is_require(node[2] and node[2][i])
      if m then module_of[id[1]] = m else declared[id[1]] = true end
    end
  elseif tag == "Localrec" or tag == "Function" or tag == "Fornum" or tag == "Forin" then
    declare(tag == "Fornum" and { node[1] } or tag == "Localrec" and { node[1] } or node[1])
  end
  for _, child in ipairs(node) do scan(child) end
end
scan(ast)

local function callee(node)
  local f = node[1]
  if f.tag == "Id" then
    return not declared[f[1]] and not module_of[f[1]] and f[1] or nil
  end
  if f.tag == "Index" and f[1].tag == "Id" and f[2].tag == "String" then
    local base = f[1][1]
    base = module_of[base] or (not declared[base] and base)
    return base and base .. "." .. f[2][1] or nil
  end
end

local out = {}
local function column(node)
  return node.offset - (offsets[node.line] or 1) + 1
end
local function check_table(name, options, t)
  local known = {}
  for k in options:gmatch("%S+") do known[k] = true end
  for _, pair in ipairs(t) do
    local key = pair.tag == "Pair" and pair[1].tag == "String" and pair[1][1]
    if key and not known[key] then
      local best = near(key, options)
      out[#out + 1] = {
        line = pair.line, column = column(pair),
        msg = string.format("unknown option '%s' for %s%s", key, name,
          best and string.format(" (did you mean '%s'?)", best) or
          (options == "" and " (it takes none)" or " (it takes: " .. options .. ")")),
      }
    end
  end
end

local function visit(node)
  if type(node) ~= "table" then return end
  if node.tag == "Call" then
    local name = callee(node)
    local s = name and sigs[name]
    if s then
      local kinds, n = {}, #node - 1
      for i = 2, #node do kinds[i - 1] = kind(node[i]) end
      local last = node[#node]
      if n > 0 and (last.tag == "Call" or last.tag == "Invoke" or last.tag == "Dots") then
        kinds = nil -- any number of arguments: binding cannot tell
      end
      local opts = kinds and bind(s.sig, kinds)
      for i = 1, n do
        if opts and opts[i] and node[i + 1].tag == "Table" then
          check_table(name, s.options, node[i + 1])
        end
      end
    end
  end
  for _, child in ipairs(node) do visit(child) end
end
visit(ast)
return out
