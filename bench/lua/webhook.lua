-- wrk script (bench/webhook-bench.sh): signed 2 KB webhook POSTs, every request a distinct delivery.
-- WRK_DATA: Lua data file from `webhook_tool.py gen2k` returning { {ts, sig, body}, ... }: N distinct
-- bodies, each signed (hex-timestamp-body) with a fresh timestamp. Requests cycle through them; with
-- several wrk threads, thread t sends entries t, t+T, t+2T, ... so no two threads send the same one.
-- WRK_PATH (default /api/whatsapp/webhooks/webjs), WRK_THREADS (T, default 1).
local path = os.getenv("WRK_PATH") or "/api/whatsapp/webhooks/webjs"
local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
local reqs = {}
local n = 0
local i = 0

local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  local me = tid or 0
  local data = dofile(os.getenv("WRK_DATA"))
  for k = 1 + me, #data, nthreads do
    local d = data[k]
    n = n + 1
    reqs[n] = wrk.format("POST", path, {
      ["Content-Type"] = "application/json",
      ["X-Timestamp"] = d[1],
      ["X-HMAC-Signature"] = d[2],
    }, d[3])
  end
  assert(n > 0, "no requests for this thread")
end

function request()
  i = i % n + 1
  return reqs[i]
end

-- done(): the shared RESULT line (result.lua, next to this script: found via this script's own path)
done = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")
