-- The requests of bench/load.py and bench/sqlite_load.py for wrk: each thread
-- sends the requests of a file in turn, from its own place in it (so the threads
-- spread over the families), and at the end one summary line is printed
-- (bench/loadtools.parse_wrk).
--
--   wrk -t THREADS -c CONNECTIONS -d SECONDS -s bench/load.lua URL -- FILE TOKENS THREADS START
--
-- FILE: one request per line, METHOD<TAB>PATH or METHOD<TAB>PATH<TAB>JSON BODY, each
-- optionally after N<TAB>: the 1-based place of its token in TOKENS (without it, 1), so
-- that one run can mix readers and writers.
-- TOKENS: comma-separated, each sent as `Authorization: Bearer TOKEN`; "-" sends none.
-- START: where in the file the first thread begins (0 to the number of lines
-- less one); the others begin evenly spread after it.

local threads = 0

function setup(thread)
   thread:set("id", threads)
   threads = threads + 1
end

local requests = {}
local position = 1

function init(args)
   local file, list = args[1], args[2] or "-"
   local count, start = tonumber(args[3]) or 1, tonumber(args[4]) or 0
   local tokens = {}
   for token in string.gmatch(list, "[^,]+") do
      tokens[#tokens + 1] = token
   end
   for line in io.lines(file) do
      local n, method, path, body = line:match("^(%d+)\t(%u+)\t([^\t]+)\t?(.*)$")
      if not method then
         n = "1"
         method, path, body = line:match("^(%u+)\t([^\t]+)\t?(.*)$")
      end
      if method then
         local headers = {}
         local token = tokens[tonumber(n)]
         if token ~= nil and token ~= "-" then
            headers["Authorization"] = "Bearer " .. token
         end
         if body == "" then
            body = nil
         else
            headers["Content-Type"] = "application/json"
         end
         requests[#requests + 1] = wrk.format(method, path, headers, body)
      end
   end
   if #requests == 0 then
      error("no requests in " .. file)
   end
   position = (start + math.floor(id * #requests / count)) % #requests + 1
end

function request()
   local raw = requests[position]
   position = position + 1
   if position > #requests then
      position = 1
   end
   return raw
end

function done(summary, latency, _)
   local e = summary.errors
   io.write(string.format(
      "wrk-result requests=%d duration_us=%d connect=%d read=%d write=%d status=%d " ..
      "timeout=%d p50_us=%d p99_us=%d mean_us=%.1f max_us=%d\n",
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
