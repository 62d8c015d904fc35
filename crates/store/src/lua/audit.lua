-- Appends one entry to a tenant's audit stream and trims it by time, in one step.
-- KEYS[1] the stream; ARGV[1] the entry's time (ms), ARGV[2] keep entries from this time
-- on (ms), ARGV[3] the entry (JSON). Stream ids are the entries' times (never below the
-- newest id, so a node whose clock is behind still appends), which makes trimming by
-- MINID the same clock as the entries' own `at`. Returns the id.
local key = KEYS[1]
local ms = tonumber(ARGV[1])
local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
if top[1] then
  local newest = tonumber(string.match(top[1][1], '^(%d+)'))
  if newest > ms then ms = newest end
end
return redis.call('XADD', key, 'MINID', '~', ARGV[2], string.format('%d-*', ms), 'e', ARGV[3])
