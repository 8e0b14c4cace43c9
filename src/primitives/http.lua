-- The Lua half of http (src/primitives/http.c sets http.get_all to
-- rt.http_get_all when the module opens).
--
-- http.get_all(list, { concurrency = 256 }): the requests of list (URLs or
-- request tables) concurrently, results in input order, each a response or
-- { error = "..." }.  Every request is its own funnelled, audited action.
-- The default concurrency keeps a 200-endpoint health check to one round
-- trip (bench/http_fanout.sh); libcurl keeps idle connections per host.
local rt = ...

function rt.http_get_all(list, opts)
  if type(list) ~= "table" then
    error("http.get_all: expected a list of URLs or requests, got " .. type(list), 2)
  end
  opts = opts or {}
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
