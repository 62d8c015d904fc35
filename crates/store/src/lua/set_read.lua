-- Moves a read mark forward, clamped to the conversation's last seq.
-- KEYS[1] reads hash, KEYS[2] state hash (same hash tag)
-- ARGV[1] reader (a participant key: "end_user:<id>" / "agent:<id>"), ARGV[2] seq
-- Returns the new mark, or 0 when it did not move.
local reads_key, state_key = KEYS[1], KEYS[2]
local reader, seq = ARGV[1], tonumber(ARGV[2])

local last = tonumber(redis.call('HGET', state_key, 'seq') or '0')
local want = math.min(seq, last)
if want <= 0 then return 0 end
local old = tonumber(redis.call('HGET', reads_key, reader) or '0')
if want <= old then return 0 end
redis.call('HSET', reads_key, reader, want)
return want
