-- The wrk script of the gateway benchmark (bench/gateway.bench.ts runs it): every request is the same
-- MCP tools/call POST with an Authorization header, each with its own DPoP proof.
--
-- wrk <options> -s bench/gateway-wrk.lua <url> -- <request file> <proofs file or -> <threads>
--   request file: line 1 the Authorization header value, line 2 a DPoP header value used when there is
--     no proofs file (an upstream or the bare proxy checks nothing), line 3 the JSON-RPC body.
--   proofs file: one DPoP proof per line, each used once: thread k of n takes lines k+1, k+1+n, ...
--     (the gateway refuses a replayed proof). A thread that runs out sends "exhausted", which the
--     gateway refuses: the run then shows non-2xx answers and the benchmark rejects it.
-- Environment GATEWAY_BENCH_INTERVAL_US: when set, each thread sends on a fixed schedule of one request
--   every that many microseconds (a thread's idle connection waits for the next slot; wrk's timers
--   step in whole milliseconds), instead of as fast as the answers come back.
-- done() prints one line "GATEWAY_BENCH_RESULT {json}" with counts and latency percentiles (µs).

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

-- Main state: number the threads and keep them to sum their counters in done().
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Thread state.
local headers, body, static_proof, proofs
local next_proof = 0
exhausted = 0

local function read_lines(path)
  local f = assert(io.open(path, "r"))
  local lines = {}
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  return lines
end

function init(args)
  local request = read_lines(args[1])
  headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["Authorization"] = request[1],
  }
  static_proof = request[2]
  body = request[3]
  if args[2] ~= "-" then
    local n = tonumber(args[3])
    proofs = {}
    local i = 0
    local f = assert(io.open(args[2], "r"))
    for line in f:lines() do
      if i % n == id then proofs[#proofs + 1] = line end
      i = i + 1
    end
    f:close()
  end
end

function request()
  local proof = static_proof
  if proofs then
    next_proof = next_proof + 1
    proof = proofs[next_proof]
    if proof == nil then
      exhausted = exhausted + 1
      proof = "exhausted"
    end
  end
  headers["DPoP"] = proof
  return wrk.format("POST", nil, headers, body)
end

local interval_us = tonumber(os.getenv("GATEWAY_BENCH_INTERVAL_US") or "") or 0
if interval_us > 0 then
  local next_at = nil
  function delay()
    local now = now_us()
    if next_at == nil then next_at = now end
    next_at = next_at + interval_us
    local wait_ms = (next_at - now) / 1000
    if wait_ms < 0.5 then return 0 end
    return math.floor(wait_ms + 0.5)
  end
end

function done(summary, latency, requests)
  local used_up = 0
  for _, t in ipairs(threads) do used_up = used_up + (t:get("exhausted") or 0) end
  local e = summary.errors
  io.write(string.format(
    'GATEWAY_BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d},"exhausted":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
    used_up))
end
