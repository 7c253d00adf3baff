-- wrk script for bench/api_send.py: POST /v1/messages with a unique Idempotency-Key per request.
local counter = 0
local tid = 0
local threads = {}
local key = os.getenv("CCM_KEY")
local profiles = tonumber(os.getenv("BENCH_PROFILES") or "1000")
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
  local body = '{"to": {"external_id": "u' .. (counter % profiles) .. '"}, "template": "bench", '
    .. '"data": {"order": "A-' .. counter .. '"}}'
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. key
  headers["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter
  return wrk.format("POST", "/v1/messages", headers, body)
end
