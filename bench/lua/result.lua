-- result.lua — wrk's done() for bench/lua/{get,post,webhook}.lua, loaded by each of them with
--   done = dofile(<dir of the calling script> .. "result.lua")
-- Prints one machine-readable RESULT line (latencies in microseconds), parsed by lib-run.sh (read_result).
return function(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT rps=%.1f reqs=%d secs=%.3f p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d bytes=%d\n",
    summary.requests / secs, summary.requests, secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout, summary.bytes))
end
