-- Settles what a step left pending (apply.lua's ARGV[24]) once a node has done it: the
-- queue entry written (the second step on a Redis Cluster), the events archived. Each is
-- a watermark in the conversation's state hash (`queued`, `archived`: the highest seq
-- done, never lowered). The mark goes once its watermark reaches the conversation's seq;
-- before that (newer changes came meanwhile) it is touched instead: scored now, so only
-- a follow-up that makes no progress looks stale to the sweepers.
-- With an archive the history stream is trimmed here, not in apply.lua: never past the
-- archived watermark, so Redis keeps every event the archive lacks, and otherwise to the
-- hot window (length and age).
--
-- KEYS[1] state hash   KEYS[2] the shard's pending set   KEYS[3] history stream
-- ARGV[1] `<tenant>/<conversation>`   ARGV[2] seq the queue entry reflects ('0': not this)
-- ARGV[3] seq archived up to ('0': not this)   ARGV[4] now, ms
-- ARGV[5] hot window length (0: unlimited)   ARGV[6] hot window age, ms (0: unlimited)
-- Returns { seq, queued, archived } as they are now.
local state_key, pending_key, history_key = KEYS[1], KEYS[2], KEYS[3]
local member, now = ARGV[1], tonumber(ARGV[4])
local queued_done, archived_done = tonumber(ARGV[2]), tonumber(ARGV[3])
local hot_len, hot_age = tonumber(ARGV[5]), tonumber(ARGV[6])

local h = redis.call('HMGET', state_key, 'seq', 'queued', 'archived')
local seq = tonumber(h[1] or '0')

local function settle(kind, field, current, done)
  if done <= 0 then return current end
  if done > current then
    redis.call('HSET', state_key, field, done)
    current = done
  end
  if current >= seq then
    redis.call('ZREM', pending_key, kind .. ':' .. member)
  else
    redis.call('ZADD', pending_key, 'XX', now, kind .. ':' .. member)
  end
  return current
end

local queued = settle('q', 'queued', tonumber(h[2] or '0'), queued_done)
local archived = settle('a', 'archived', tonumber(h[3] or '0'), archived_done)

if archived_done > 0 then
  if hot_len > 0 then
    local keep_from = math.min(archived + 1, seq - hot_len + 1)
    if keep_from > 1 then
      redis.call('XTRIM', history_key, 'MINID', '~', keep_from .. '-0')
    end
  end
  if hot_age > 0 then
    -- A few of the oldest per call (amortised), only archived ones.
    local oldest = redis.call('XRANGE', history_key, '-', '+', 'COUNT', 16)
    for _, entry in ipairs(oldest) do
      local entry_seq = tonumber(string.match(entry[1], '^(%d+)'))
      local fields, t = entry[2], nil
      for i = 1, #fields, 2 do
        if fields[i] == 't' then t = tonumber(fields[i + 1]) end
      end
      if entry_seq and entry_seq <= archived and t and t < now - hot_age then
        redis.call('XDEL', history_key, entry[1])
      else
        break
      end
    end
  end
end

return { seq, queued, archived }
