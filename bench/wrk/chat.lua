-- wrk script for bench/run.py: POSTs a tiny chat-completions body and checks every 2xx body.
-- Settings come from the environment (one wrk process per cell):
--   BENCH_MODEL    model name in the body            (default "bench")
--   BENCH_STREAM   "1" for "stream": true            (default false)
--   BENCH_AUTH     bearer token for Authorization    (optional)
--   BENCH_HEADERS  extra headers, "Name: value|Name: value"
--   BENCH_EXPECT   a string every 2xx body must contain (the fixture's text, or "[DONE]")
-- done() prints one line "BENCHJSON {...}" that run.py parses.

local model = os.getenv("BENCH_MODEL") or "bench"
local stream = os.getenv("BENCH_STREAM") == "1"
local auth = os.getenv("BENCH_AUTH") or ""
local extra = os.getenv("BENCH_HEADERS") or ""
local expect = os.getenv("BENCH_EXPECT") or ""

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end
for name, value in string.gmatch(extra, "([^|:]+):%s*([^|]+)") do
  wrk.headers[name] = value
end
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello in five words."}]'
  .. ',"max_tokens":32,"stream":' .. (stream and "true" or "false") .. '}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  ok = 0
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    if expect ~= "" and (body == nil or not string.find(body, expect, 1, true)) then
      bad = bad + 1
    else
      ok = ok + 1
    end
  end
end

function done(summary, latency, requests)
  local nbad, nok = 0, 0
  for _, t in ipairs(threads) do
    nbad = nbad + (t:get("bad") or 0)
    nok = nok + (t:get("ok") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"ok":%d,"bad_body":%d,"duration_us":%d,"bytes":%d,'
      .. '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,'
      .. '"lat_mean_us":%.1f,"lat_stdev_us":%.1f,"lat_max_us":%d,'
      .. '"p50_us":%d,"p75_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, nok, nbad, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
