-- Moves a read mark forward, clamped to the conversation's last seq.
-- KEYS[1] reads hash, KEYS[2] state hash (same hash tag)
-- ARGV[1] reader ("role:id"), ARGV[2] seq
-- Returns the new mark, or 0 when it did not move.
local last = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
local want = math.min(tonumber(ARGV[2]), last)
if want <= 0 then return 0 end
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if want <= old then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], want)
return want
