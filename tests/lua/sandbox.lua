-- The sandbox (SPEC §9): every way around the primitives is closed, says so
-- ("sandbox" / "not available"), and leaves the world as it was.
-- Run by ctest from tests/lua as `runbook run sandbox.lua --no-audit --yes`.
runbook { name = "tests/sandbox", title = "Sandbox escapes are refused" }

local VICTIM = "../fixtures/sandbox-victim.txt"      -- must survive every step
local VICTIM_TEXT = "victim: the sandbox tests try to remove, rename and overwrite this file.\n"
local NEW = "../fixtures/sandbox-must-not-exist.txt" -- must never be created
local CLOSED = "sandbox"                              -- every refusal names the sandbox

local function checkerr(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching '" .. pattern .. "', but the call succeeded")
  err = tostring(err)
  assert(err:find(pattern), "error '" .. err .. "' does not match '" .. pattern .. "'")
  return err
end

local function exists(p)
  local f = io.open(p, "r")
  if f then f:close() return true end
  return false
end

local function victim_intact()
  local f = assert(io.open(VICTIM, "r"), "the victim file is gone")
  local s = f:read("a")
  f:close()
  assert(s == VICTIM_TEXT, "the victim file was changed: " .. string.format("%q", s))
  assert(not exists(NEW), NEW .. " was created")
  assert(not exists(VICTIM .. ".moved"), "the victim was renamed")
end

step("preconditions", function()
  victim_intact()
end)

step("no shell, no exit", function()
  local e = checkerr(CLOSED, os.execute, "touch " .. NEW)
  assert(e:find("not available"), e)
  checkerr(CLOSED, os.execute)
  checkerr(CLOSED, io.popen, "touch " .. NEW)
  checkerr(CLOSED, io.popen, "touch " .. NEW, "w")
  -- if os.exit escaped, the process would end with 1: a failure either way
  checkerr(CLOSED, os.exit, 1)
  checkerr(CLOSED, os.exit, false)
  victim_intact()
end)

step("no file changes outside fs", function()
  checkerr(CLOSED, os.remove, VICTIM)
  checkerr(CLOSED, os.rename, VICTIM, VICTIM .. ".moved")
  checkerr(CLOSED, os.tmpname)
  checkerr(CLOSED, io.tmpfile)
  for _, mode in ipairs{ "w", "a", "r+", "w+", "a+", "wb", "rb+" } do
    checkerr(CLOSED, io.open, NEW, mode)
    checkerr(CLOSED, io.open, VICTIM, mode)
  end
  checkerr(CLOSED, io.output, NEW)
  checkerr(CLOSED, io.output, VICTIM)
  -- a file opened for reading cannot be written through
  local f = assert(io.open(VICTIM, "r"))
  pcall(f.write, f, "overwritten")
  pcall(f.close, f)
  victim_intact()
  -- reading stays possible: a runbook may look at local files
  assert(io.open(VICTIM, "rb")):close()
  assert(io.lines(VICTIM)() == VICTIM_TEXT:sub(1, -2))
end)

step("no C code", function()
  checkerr(CLOSED, package.loadlib, "/usr/lib/x86_64-linux-gnu/lua/5.4/lfs.so", "luaopen_lfs")
  checkerr(CLOSED, package.loadlib, "/usr/lib/x86_64-linux-gnu/lua/5.4/lfs.so", "*")
  -- C modules must not load, even when the runbook points package.cpath at them
  local saved_cpath = package.cpath
  package.cpath = "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;/usr/local/lib/lua/5.4/?.so;" ..
                  "/usr/lib/x86_64-linux-gnu/lua/5.4/?/core.so"
  for _, name in ipairs{ "lfs", "socket.core", "cjson", "posix" } do
    local ok, err = pcall(require, name)
    assert(not ok, "require '" .. name .. "' loaded a C module")
    assert(package.loaded[name] == nil, name .. " is in package.loaded")
    err = tostring(err)
    assert(err:find("not found", 1, true) or err:find(CLOSED, 1, true)
           or err:find("not available", 1, true), err)
  end
  package.cpath = saved_cpath
  assert(rawget(_G, "lfs") == nil)
end)

-- `return "escaped"` compiled by luac 5.4
local CHUNK = "\27\76\117\97\84\0\25\147\13\10\26\10\4\8\8\120\86\0\0\0\0\0\0\0\0\0\0\0\40\119" ..
  "\64\1\145\114\101\116\117\114\110\32\34\101\115\99\97\112\101\100\34\128\128\0\1\2\132\81" ..
  "\0\0\0\3\0\0\0\70\0\2\1\70\0\1\1\129\4\136\101\115\99\97\112\101\100\129\1\0\0\128\132\1" ..
  "\0\0\0\128\128\129\133\95\69\78\86"

step("no binary chunks", function()
  checkerr("not available", string.dump, function() end)
  checkerr("not available", ("").dump, function() end)
  checkerr(CLOSED, load, CHUNK, "=chunk", "b")
  checkerr(CLOSED, load, CHUNK, "=chunk", "bt")
  checkerr(CLOSED, load, CHUNK, "=chunk", "b", {})
  -- the default mode: refused (load reports failure as nil, message)
  local f, err = load(CHUNK, "=chunk")
  assert(f == nil, "a binary chunk was loaded")
  assert(tostring(err):find("binary"), tostring(err))
  f, err = load(CHUNK, "=chunk", "t")
  assert(f == nil and tostring(err):find("binary"), tostring(err))
  -- a reader function yielding the chunk piecewise
  local sent = false
  f = load(function() if sent then return nil end sent = true return CHUNK end, "=reader")
  assert(f == nil, "a binary chunk was loaded through a reader function")
  -- text chunks still work
  assert(load("return 1 + 1", "=t")() == 2)
  assert(load("return x", "=t", "t", { x = 5 })() == 5)
end)

step("no dofile, loadfile", function()
  checkerr("not available", dofile, VICTIM)
  checkerr("not available", loadfile, VICTIM)
  checkerr("not available", dofile)
end)

step("debug is cut down", function()
  -- these reach the registry, other functions' upvalues and locals, or hooks
  for _, name in ipairs{ "getregistry", "sethook", "getupvalue", "setupvalue", "upvaluejoin",
                         "getlocal", "setlocal", "setmetatable", "getmetatable",
                         "setuservalue", "getuservalue" } do
    assert(debug[name] == nil, "debug." .. name .. " is available")
  end
  checkerr("nil", function() return debug.getregistry() end)
  checkerr("nil", function() return debug.sethook(print, "l") end)
  assert(type(debug.traceback) == "function")
  assert(type(debug.traceback("x")) == "string")
end)

step("the world is untouched", function()
  victim_intact()
end)

-- load with only the chunk (the common form) behaves like plain Lua's, minus
-- binary chunks: last, so a failure here does not hide the steps above
step("load(chunk) with one argument", function()
  local f, err = load(CHUNK)
  assert(f == nil, "a binary chunk was loaded")
  assert(tostring(err):find("binary"), tostring(err))
  local sent = false
  f = load(function() if sent then return nil end sent = true return CHUNK end)
  assert(f == nil, "a binary chunk was loaded through a reader function")
  assert(load("return 1 + 1")() == 2)
end)
