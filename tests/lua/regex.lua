-- regex.match / regex.find: POSIX extended regular expressions.
runbook { name = "tests/regex", title = "regex.match and regex.find" }

local function checkerr(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching " .. pattern)
  assert(tostring(err):find(pattern), "error '" .. tostring(err) .. "' does not match " .. pattern)
end

step("match is anchored at both ends", function()
  for _, row in ipairs {
    { "5..", "503", true }, { "5..", "5031", false }, { "5..", "x503", false },
    { "5..|429", "429", true }, { "5..|429", "4290", false }, { "[0-9]+", "", false },
    { "a(b|c)*d", "abcbd", true }, { "", "", true },
  } do
    assert(regex.match(row[1], row[2]) == row[3],
           string.format("regex.match(%q, %q) should be %s", row[1], row[2], tostring(row[3])))
  end
end)

step("find returns positions and captures", function()
  local s, e, k, v = regex.find("([a-z]+)=([0-9]+)", "x foo=42 y")
  assert(s == 3 and e == 8 and k == "foo" and v == "42")
  assert(regex.find("z", "abc") == nil)
  local s2, e2, opt = regex.find("a(x)?b", "ab")
  assert(s2 == 1 and e2 == 2 and opt == nil)
end)

step("a bad pattern names itself", function()
  checkerr("regex '%(': ", regex.match, "(", "x")
  checkerr("regex '%[a': ", regex.find, "[a", "x")
  checkerr("regex.match: argument 1 %(pattern%) must be a string, got nil", regex.match, nil, "x")
  checkerr("regex.find: missing argument 2 %(s%)", regex.find, "a")
end)
