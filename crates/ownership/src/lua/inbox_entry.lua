-- One conversation's entry in the tenant's queue (prepended to `inbox.lua`, and to
-- `apply.lua` when the queue is updated inside the apply script, on a single Redis).
-- Keyed by (conversation, seq): an entry never goes back to an older seq, so retried and
-- late or reordered updates are harmless.
--
-- q: { inbox hash, unanswered zset, active zset, finished zset, inbox event stream,
--      publish command, agents channel, inbox stream max length }
-- u: { conversation, seq (number), status, owner ('' for none), epoch (number),
--      disabled ('1'/'0'), at (number, ms), status_changed (boolean: also publish a queue
--      frame), preview ('' to keep the old one) }
-- Returns 1 when the entry changed, 0 when it already reflected this seq or a later one.
local function update_inbox_entry(q, u)
  local old_blob = redis.call('HGET', q[1], u.conversation)
  local old = old_blob and cmsgpack.unpack(old_blob) or nil
  if old and old.seq >= u.seq then return 0 end

  local preview = u.preview
  if preview == '' then preview = old and old.preview or nil end
  local since = u.at
  if old and not u.status_changed then since = old.since end
  local item = {
    conversation = u.conversation, status = u.status,
    owner = (u.owner ~= '') and u.owner or nil,
    epoch = u.epoch, seq = u.seq, disabled = u.disabled == '1',
    since = since, updated = u.at, preview = preview,
  }
  redis.call('HSET', q[1], u.conversation, cmsgpack.pack(item))

  -- An entry is in exactly the zset of its status; when the status and the score are
  -- unchanged (most plain messages) there is nothing to move.
  local zsets = { unanswered = q[2], active = q[3], finished = q[4] }
  local function score_of(entry)
    return (entry.status == 'unanswered') and entry.since or entry.updated
  end
  local score = score_of(item)
  local same_status = old and old.status == item.status
  if not same_status then
    for status, key in pairs(zsets) do
      if status ~= item.status then redis.call('ZREM', key, u.conversation) end
    end
  end
  local key = zsets[item.status]
  if key and not (same_status and score_of(old) == score) then
    redis.call('ZADD', key, score, u.conversation)
  end

  if u.status_changed then
    local frame = { type = 'queue' }
    for k, v in pairs(item) do frame[k] = v end
    -- The stream entry's id is the change's inbox position (its cursor).
    local id = redis.call('XADD', q[5], 'MAXLEN', q[8], '*', 'q', cmsgpack.pack(frame))
    frame.cursor = id
    redis.call(q[6], q[7], cmsgpack.pack(frame))
  end
  return 1
end
