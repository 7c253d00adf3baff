-- wrk script for bench/ingest_batch.py: POST /v1/batch with BENCH_BATCH Segment-spec events, a
-- realistic mix (70 % track, 20 % page, 10 % identify) for BENCH_PROFILES known users, each user
-- on the device (anonymousId) seeded for it. Every event's messageId is unique: the run's name,
-- the wrk thread and a per-thread counter (a repeated id would be deduplicated, not stored).
-- CCM_KEY is the Basic credentials, base64("<write key>:").
local counter = 0
local tid = 0
local threads = {}
local credentials = os.getenv("CCM_KEY")
local profiles = tonumber(os.getenv("BENCH_PROFILES") or "10000")
local size = tonumber(os.getenv("BENCH_BATCH") or "100")
local run = os.getenv("BENCH_RUN") or "r"
local pages = {"/", "/pricing", "/docs/getting-started", "/blog/launch", "/account"}
local products = {"starter", "pro", "team", "enterprise"}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  tid = tonumber(wrk.thread:get("tid")) or 0
  math.randomseed(os.time() + tid * 7919)
end

local function track(n, user)
  local product = products[n % #products + 1]
  return '"type": "track", "event": "Order Completed", "properties": {"order_id": "o-' .. n
    .. '", "revenue": ' .. (n % 500) .. '.90, "currency": "EUR", "products": [{"sku": "' .. product
    .. '", "quantity": 1}]}'
end

local function page(n, user)
  local path = pages[n % #pages + 1]
  return '"type": "page", "name": "' .. path .. '", "properties": {"path": "' .. path
    .. '", "url": "https://example.com' .. path .. '", "title": "Example", "referrer": "https://www.google.com/"}'
end

local function identify(n, user)
  return '"type": "identify", "traits": {"email": "user' .. user .. '@example.com", "firstName": "User", '
    .. '"lastName": "' .. user .. '", "plan": "' .. products[n % #products + 1] .. '", "logins": ' .. (n % 97) .. '}'
end

local function event(n, stamp)
  local user = math.random(0, profiles - 1)
  local roll = n % 10
  local body
  if roll < 7 then body = track(n, user) elseif roll < 9 then body = page(n, user) else body = identify(n, user) end
  return '{' .. body .. ', "userId": "u' .. user .. '", "anonymousId": "anon-' .. user .. '", "messageId": "'
    .. run .. '-' .. tid .. '-' .. n .. '", "timestamp": "' .. stamp
    .. '", "context": {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (X11; Linux x86_64)"}}'
end

request = function()
  counter = counter + 1
  local stamp = os.date("!%Y-%m-%dT%H:%M:%S.000Z")
  local items = {}
  for i = 1, size do
    items[i] = event(counter * size + i, stamp)
  end
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Basic " .. credentials
  local body = '{"batch": [' .. table.concat(items, ", ") .. '], "sentAt": "' .. stamp
    .. '", "context": {"library": {"name": "analytics-python", "version": "2.3.2"}}}'
  return wrk.format("POST", "/v1/batch", headers, body)
end
