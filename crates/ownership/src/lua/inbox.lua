-- The second, idempotent step: the tenant's queue entries of one or more conversations
-- (a node batches the updates it has pending for one tenant into one call), each keyed by
-- (conversation, seq): an entry never goes back to an older seq, so retries and late or
-- reordered updates are harmless.
--
-- KEYS[1] inbox hash  KEYS[2] unanswered zset  KEYS[3] active zset  KEYS[4] finished zset
-- KEYS[5] inbox event stream   (all under the tenant's hash tag)
-- ARGV[1] publish command   ARGV[2] agents channel   ARGV[3] inbox stream max length
-- then 9 arguments per update, in order of application:
--   conversation, seq, status, owner ('' for none), epoch, disabled ('1'/'0'),
--   time of the change (ms), status changed ('1'/'0': also publish a queue frame),
--   preview ('' to keep the old one)
-- Returns how many entries changed (an update that is not newer than the entry is skipped).

local zsets = { unanswered = KEYS[2], active = KEYS[3], finished = KEYS[4] }
local changed = 0

local function score_of(item)
  return (item.status == 'unanswered') and item.since or item.updated
end

for base = 4, #ARGV, 9 do
  local conversation, seq = ARGV[base], tonumber(ARGV[base + 1])
  local old_blob = redis.call('HGET', KEYS[1], conversation)
  local old = old_blob and cmsgpack.unpack(old_blob) or nil
  if not (old and old.seq >= seq) then
    local at = tonumber(ARGV[base + 6])
    local status_changed = ARGV[base + 7] == '1'
    local preview = ARGV[base + 8]
    if preview == '' then preview = old and old.preview or nil end
    local since = at
    if old and not status_changed then since = old.since end

    local item = {
      conversation = conversation, status = ARGV[base + 2],
      owner = (ARGV[base + 3] ~= '') and ARGV[base + 3] or nil,
      epoch = tonumber(ARGV[base + 4]), seq = seq, disabled = ARGV[base + 5] == '1',
      since = since, updated = at, preview = preview,
    }
    redis.call('HSET', KEYS[1], conversation, cmsgpack.pack(item))

    -- An entry is in exactly the zset of its status; when the status and the score are
    -- unchanged (most plain messages) there is nothing to move.
    local score = score_of(item)
    local same_status = old and old.status == item.status
    if not same_status then
      for status, key in pairs(zsets) do
        if status ~= item.status then redis.call('ZREM', key, conversation) end
      end
    end
    local key = zsets[item.status]
    if key and not (same_status and score_of(old) == score) then
      redis.call('ZADD', key, score, conversation)
    end

    if status_changed then
      local frame = { type = 'queue' }
      for k, v in pairs(item) do frame[k] = v end
      -- The stream entry's id is the change's inbox position (its cursor).
      local id = redis.call('XADD', KEYS[5], 'MAXLEN', tonumber(ARGV[3]), '*', 'q', cmsgpack.pack(frame))
      frame.cursor = id
      redis.call(ARGV[1], ARGV[2], cmsgpack.pack(frame))
    end
    changed = changed + 1
  end
end
return changed
