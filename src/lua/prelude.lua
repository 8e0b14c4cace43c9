-- The parts of the runbook API that are plain Lua: they only compose
-- primitives, so they run as ordinary code inside the step's coroutine and
-- every primitive they call still goes through the action funnel.
-- mutates: run_runbook
local rt = ...
local signature = require "signature"

-- wait_until(fn, { timeout = 60, every = 2, what = "condition" })
-- Calls fn until it returns a true value; an error from fn counts as "not
-- yet".  Shows a live progress line on a terminal.  The signature refuses a
-- misspelled option, which would otherwise wait the default 60 s.
wait_until = signature.wrap("wait_until", "fn:fn opts?:opts", "timeout every what",
                            function(fn, opts)
  opts = opts or {}
  local timeout = opts.timeout or 60
  local every = opts.every or 2
  local what = opts.what or "condition"
  local started = rt.mono()
  local attempt, last = 0, "never checked"
  while true do
    attempt = attempt + 1
    local ok, res = pcall(fn)
    if ok and res then
      rt.progress(nil)
      return res
    end
    if not ok and tostring(res):find("interrupted", 1, true) then
      rt.progress(nil)
      error(res, 0)
    end
    last = ok and ("returned " .. tostring(res)) or tostring(res)
    local left = timeout - (rt.mono() - started)
    if left <= 0 then
      rt.progress(nil)
      error(string.format("wait_until: %s not reached after %g s (%d attempts; last: %s)",
                          what, timeout, attempt, last), 2)
    end
    rt.progress(string.format("waiting for %s: attempt %d, %.0f s left", what, attempt, left))
    sleep(math.min(every, left))
  end
end)

-- run_runbook(name, params) -> the sub-runbook's state
-- Runs another runbook's steps inside the current step, recorded as part of
-- this run ("parent: child step").
run_runbook = signature.wrap("run_runbook", "name:str params?:table", "", function(name, params)
  local rb = rt.load_runbook(name, params or {})
  local label = rb.meta.name or name
  for i, s in ipairs(rb.steps) do
    local run = true
    local when = s.opts.when
    if type(when) == "function" then
      run = when()
    elseif when ~= nil then
      run = when
    end
    if not run then
      rt.substep(label, i, s.name, "skipped", "when")
    else
      local t0 = rt.mono()
      local ok, err = pcall(s.fn)
      rt.substep(label, i, s.name, ok and "ok" or "failed", (not ok) and tostring(err) or nil, t0)
      if not ok and not s.opts.continue_on_error then
        error(string.format("run_runbook %s: step %d (%s) failed: %s", label, i, s.name,
                            tostring(err)), 0)
      end
    end
  end
  return rb.env.state
end)

-- rt.last_line(s): the last non-empty line of a tool's output (what says
-- most about a failure), for the engine's own Lua
function rt.last_line(s)
  local line = ""
  for l in tostring(s or ""):gmatch("[^\n]+") do line = l end
  return line
end
