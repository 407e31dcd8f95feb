-- wrk script: send pre-built raw requests in order, one per request, each used at most once.
-- args: HEADERS_FILE (header blocks, each ending in CRLF CRLF) [BODY_FILE appended to every one].
-- Run wrk with -t1: every thread would otherwise start at the same first request (same nonce).
-- When the list runs out it wraps around, which replays nonces: the proxy then answers 401 and
-- wrk counts "Non-2xx" — run.sh reports that count, so a too-short list is visible.

local reqs, n, i, body = {}, 0, 0, ""

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local all = f:read("*a")
  f:close()
  if args[2] then
    local b = assert(io.open(args[2], "rb"))
    body = b:read("*a")
    b:close()
  end
  local pos = 1
  while true do
    local s, e = string.find(all, "\r\n\r\n", pos, true)
    if not s then break end
    n = n + 1
    reqs[n] = string.sub(all, pos, e)
    pos = e + 1
  end
  assert(n > 0, "no requests in " .. args[1])
end

function request()
  i = i + 1
  if i > n then i = 1 end
  -- the body is appended here, not stored per request: 64 KiB x N would not fit in memory
  return reqs[i] .. body
end
