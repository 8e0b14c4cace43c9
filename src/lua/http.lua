-- http.get_all(list, { concurrency = 100 }): the requests of list (URLs or
-- request tables) concurrently, results in input order, each a response or
-- { error = "..." }.  Every request is its own funnelled, audited action.
local rt = ...

function http.get_all(list, opts)
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
  end, { concurrency = opts.concurrency or 100, check = false })
end
