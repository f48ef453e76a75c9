-- wrk script: daemon envelopes (CONTRACT §4) for tools/bench. One wrk thread per connection,
-- each thread owns one run, so `seq` grows strictly per run and requests never race.
-- The Python side prepends a `config` table: {mode, path, phase, big, runs = {{run, tok, thr, chat}}}
-- (`big`: every envelope ~24 KB instead of 0.7..4 KB).
-- mode: apply | duplicate | stale | quarantine | threads
local counter = 0
local me = nil
local pad = nil
local fixed = nil
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
end

local function message(i, uuid, text)
  return '{"type":"assistant","uuid":"' .. uuid .. '","session_id":"bench","message":{"role":"assistant","model":"fake-agent-1","content":[{"type":"text","text":"' .. text .. '"}]}}'
end

local function envelope(event_id, seq, run_id)
  -- 1..10 messages, 0.7..4 KB in total
  local n = math.random(1, 10)
  local size = math.random(700, 4000)
  local per = math.floor((size - 200) / n) - 150
  if per < 8 then per = 8 end
  if config.big then  -- ~24 KB: over the quarantine inline limit, so the payload is offloaded
    n = 6
    per = #pad - 300
  end
  local parts = {}
  for i = 1, n do
    parts[i] = message(i, event_id .. "-m" .. i, string.sub(pad, 1, per))
  end
  return '{"threadId":"' .. me.thr .. '","threadChatId":"' .. me.chat .. '","payloadVersion":2,"timezone":"UTC","runId":"' .. run_id .. '","eventId":"' .. event_id .. '","seq":' .. seq .. ',"endSha":null,"messages":[' .. table.concat(parts, ",") .. ']}'
end

function init(args)
  math.randomseed(tid * 7919 + config.phase)
  me = config.runs[((tid - 1) % #config.runs) + 1]
  local words = {"refactor ", "test ", "module ", "fix ", "commit ", "diff ", "agent ", "seq "}
  local buf = {}
  local len = 0
  while len < 4200 do
    local w = words[math.random(1, #words)]
    buf[#buf + 1] = w
    len = len + #w
  end
  pad = table.concat(buf)
  wrk.method = "POST"
  wrk.path = config.path
  wrk.headers["Content-Type"] = "application/json"
  if me.tok ~= "" then
    wrk.headers["X-Daemon-Token"] = me.tok
  end
  wrk.headers["Authorization"] = config.auth
  if config.mode == "duplicate" then
    fixed = envelope("dup-" .. config.phase .. "-" .. tid, 1, me.run)
  end
end

function request()
  counter = counter + 1
  local body
  if config.mode == "duplicate" then
    body = fixed
  elseif config.mode == "threads" then
    body = '{"threadId":"t-' .. config.phase .. '-' .. tid .. '-' .. counter .. '","userId":"bench-user","repoFullName":"bench/repo","sandboxProvider":"manual","codesandboxId":"sb-' .. tid .. '-' .. counter .. '"}'
  else
    local event_id = "e-" .. config.phase .. "-" .. tid .. "-" .. counter
    local seq = counter
    local run_id = me.run
    if config.mode == "stale" then
      seq = 1
    elseif config.mode == "quarantine" then
      run_id = "not-the-active-run-" .. tid
    end
    body = envelope(event_id, seq, run_id)
  end
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"errors_status":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end

-- Pacing for the soak: each connection waits `delay_ms` between requests.
if (config.delay_ms or 0) > 0 then
  function delay()
    return config.delay_ms
  end
end
