-- Runs after `trim.lua` (`trim_older_than`).
-- Settles what a step left pending (apply.lua's ARGV[24]) once a node has done it: the
-- queue entry written (the second step on a Redis Cluster), the events archived. Each is
-- a watermark in the conversation's state hash (`queued`, `archived`): every seq up to it
-- is done. Nodes finish out of order (two nodes apply commands to one conversation, one
-- dies before its follow-up), so what is done past the watermark is kept as intervals
-- (`queued_ahead`, `archived_ahead`: `a-b,c-d`), and the watermark only moves over
-- contiguous work: a follow-up a dead node never did stays a gap until a sweeper does it.
-- The mark goes once its watermark reaches the conversation's seq; before that it is
-- touched (scored now) when its watermark moved, so only a follow-up making no progress
-- looks stale to the sweepers.
-- With an archive the history stream is trimmed here, not in apply.lua: never past the
-- archived watermark, so Redis keeps every event the archive may lack, and otherwise to
-- the hot window (length and age).
--
-- KEYS[1] state hash   KEYS[2] the shard's pending set   KEYS[3] history stream
-- ARGV[1] `<tenant>/<conversation>`   ARGV[2] seq intervals whose queue follow-ups are
-- done (`a-b,c-d`; '' for none)   ARGV[3] seq intervals archived ('' for none)
-- ARGV[4] now, ms   ARGV[5] hot window length (0: unlimited)
-- ARGV[6] hot window age, ms (0: unlimited)
-- Returns { seq, queued, archived } as they are now.
local state_key, pending_key, history_key = KEYS[1], KEYS[2], KEYS[3]
local member, now = ARGV[1], tonumber(ARGV[4])
local queued_done, archived_done = ARGV[2], ARGV[3]
local hot_len, hot_age = tonumber(ARGV[5]), tonumber(ARGV[6])
-- Intervals kept past a watermark at most (past it the highest are forgotten: a sweeper
-- redoes them, harmlessly).
local MAX_AHEAD = 64

local h = redis.call('HMGET', state_key, 'seq', 'queued', 'queued_ahead', 'archived',
  'archived_ahead')
local seq = tonumber(h[1] or '0')

local function parse(text, into)
  for a, b in string.gmatch(text or '', '(%d+)-(%d+)') do
    into[#into + 1] = { tonumber(a), tonumber(b) }
  end
end

local function settle(kind, field, current, ahead, done)
  if done == '' then return current end
  local intervals = {}
  parse(ahead, intervals)
  parse(done, intervals)
  table.sort(intervals, function(x, y) return x[1] < y[1] end)
  local before = current
  local rest = {}
  for _, iv in ipairs(intervals) do
    if iv[1] <= current + 1 then
      if iv[2] > current then current = iv[2] end
    else
      local last = rest[#rest]
      if last and iv[1] <= last[2] + 1 then
        if iv[2] > last[2] then last[2] = iv[2] end
      elseif #rest < MAX_AHEAD then
        rest[#rest + 1] = { iv[1], iv[2] }
      end
    end
  end
  local text = {}
  for i, iv in ipairs(rest) do text[i] = iv[1] .. '-' .. iv[2] end
  redis.call('HSET', state_key, field, current, field .. '_ahead', table.concat(text, ','))
  if current >= seq then
    redis.call('ZREM', pending_key, kind .. ':' .. member)
  elseif current > before then
    redis.call('ZADD', pending_key, 'XX', now, kind .. ':' .. member)
  end
  return current
end

local queued = settle('q', 'queued', tonumber(h[2] or '0'), h[3], queued_done)
local archived = settle('a', 'archived', tonumber(h[4] or '0'), h[5], archived_done)

if archived_done ~= '' then
  if hot_len > 0 then
    local keep_from = math.min(archived + 1, seq - hot_len + 1)
    if keep_from > 1 then
      redis.call('XTRIM', history_key, 'MINID', '~', keep_from .. '-0')
    end
  end
  if hot_age > 0 then
    trim_older_than(history_key, now - hot_age, archived)
  end
end

return { seq, queued, archived }
