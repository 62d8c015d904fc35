-- The second, idempotent step: the tenant's queue entry of one conversation, keyed by
-- (conversation, seq): an entry never goes back to an older seq, so retries and late or
-- reordered calls are harmless.
--
-- KEYS[1] inbox hash  KEYS[2] unanswered zset  KEYS[3] active zset  KEYS[4] finished zset
-- KEYS[5] inbox event stream   (all under the tenant's hash tag)
-- ARGV[1]  conversation   ARGV[2] seq   ARGV[3] status   ARGV[4] owner ('' for none)
-- ARGV[5]  epoch   ARGV[6] disabled ('1'/'0')   ARGV[7] time of the change, ms
-- ARGV[8]  status changed ('1'/'0')   ARGV[9] preview ('' to keep the old one)
-- ARGV[10] publish command   ARGV[11] agents channel   ARGV[12] publish ('1'/'0')
-- ARGV[13] inbox stream max length
-- Returns 1 when the entry changed, 0 when it already reflected this seq or a later one.

local conversation, seq = ARGV[1], tonumber(ARGV[2])
local old_blob = redis.call('HGET', KEYS[1], conversation)
local old = old_blob and cmsgpack.unpack(old_blob) or nil
if old and old.seq >= seq then return 0 end

local at = tonumber(ARGV[7])
local status_changed = ARGV[8] == '1'
local preview = ARGV[9]
if preview == '' then preview = old and old.preview or nil end
local since = at
if old and not status_changed then since = old.since end

local item = {
  conversation = conversation, status = ARGV[3],
  owner = (ARGV[4] ~= '') and ARGV[4] or nil,
  epoch = tonumber(ARGV[5]), seq = seq, disabled = ARGV[6] == '1',
  since = since, updated = at, preview = preview,
}
redis.call('HSET', KEYS[1], conversation, cmsgpack.pack(item))

local zsets = { unanswered = KEYS[2], active = KEYS[3], finished = KEYS[4] }
for status, key in pairs(zsets) do
  if status ~= item.status then redis.call('ZREM', key, conversation) end
end
local score = (item.status == 'unanswered') and item.since or item.updated
local key = zsets[item.status]
if key then redis.call('ZADD', key, score, conversation) end

if ARGV[12] == '1' then
  local frame = { type = 'queue' }
  for k, v in pairs(item) do frame[k] = v end
  -- The stream entry's id is the change's inbox position (its cursor).
  local id = redis.call('XADD', KEYS[5], 'MAXLEN', tonumber(ARGV[13]), '*', 'q', cmsgpack.pack(frame))
  frame.cursor = id
  redis.call(ARGV[10], ARGV[11], cmsgpack.pack(frame))
end
return 1
