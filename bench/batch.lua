-- wrk script for bench/api_batch.py: POST /v1/messages/batch with BENCH_BATCH messages, each
-- with its own idempotency key, unique per request.
local counter = 0
local tid = 0
local threads = {}
local key = os.getenv("CCM_KEY")
local profiles = tonumber(os.getenv("BENCH_PROFILES") or "1000")
local size = tonumber(os.getenv("BENCH_BATCH") or "1000")
local run = os.getenv("BENCH_RUN") or "r"

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  tid = tonumber(wrk.thread:get("tid")) or 0
end

request = function()
  counter = counter + 1
  local items = {}
  for i = 1, size do
    local n = counter * size + i
    items[i] = '{"to": {"external_id": "u' .. (n % profiles) .. '"}, "template": "bench", "data": {"order": "A-'
      .. n .. '"}, "idempotency_key": "' .. run .. "-" .. tid .. "-" .. n .. '"}'
  end
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. key
  return wrk.format("POST", "/v1/messages/batch", headers, '{"messages": [' .. table.concat(items, ", ") .. "]}")
end
