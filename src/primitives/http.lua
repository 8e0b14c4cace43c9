-- The Lua half of http (src/primitives/http.c sets http.get_all to
-- rt.http_get_all when the module opens).
--
-- http.get_all(list, { concurrency = 256, request = opts }): the requests of
-- list (URLs, fetched with http.get(url, opts.request), or request tables)
-- concurrently, results in input order, each a response or { error = "..." }.
-- Every request is its own funnelled, audited action.  The default
-- concurrency keeps a 200-endpoint health check to one round trip
-- (bench/http_fanout.sh); libcurl keeps idle connections per host.
local rt = ...
local signature = require "signature"

local function get_all(list, opts)
  opts = opts or {}
  -- every item's shape first: a misspelled option in the tenth request is a
  -- mistake in the call, raised before the first request goes out, not an
  -- { error = ... } among the results after nine went
  for _, item in ipairs(list) do
    if type(item) == "table" then
      signature.check("http.request", item)
    else
      signature.check("http.get", item, opts.request)
    end
  end
  return parallel(list, function(item)
    local ok, res
    if type(item) == "string" then
      ok, res = pcall(http.get, item, opts.request)
    else
      ok, res = pcall(http.request, item)
    end
    if ok then return res end
    return { error = tostring(res) }
  end, { concurrency = opts.concurrency or 256, check = false })
end

rt.http_get_all = signature.wrap("http.get_all", "list:table opts?:opts", "concurrency request",
                                 get_all)
