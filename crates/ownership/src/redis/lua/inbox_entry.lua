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
-- Returns 1 when the entry changed, 0 when it already reflected this seq or a later one;
-- when the change took the conversation out of the unanswered queue, the time it had
-- entered it (chathub_ownership::frames::queued_since), else nil; and the entry's
-- `since` (nil when unchanged).
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
  if old and old.status == 'unanswered' and item.status ~= 'unanswered' then
    return 1, old.since, item.since
  end
  return 1, nil, item.since
end

-- What a command owes beyond its events and queue entry (the Lua restatement of
-- chathub_ownership::frames::{ownership_lost, mentions, received_record}; the differential test
-- holds them equal). Written whether or not the queue entry was newer: the record is
-- idempotent by its id, and a late notice still tells the previous owner who took it.
--
-- q: as above, plus q[9] the agents' own channel prefix (`<prefix>:agent:{tenant}/`) and
--    q[10] the tenant's webhook job set
-- f: { conversation, at (number), job_seq (number: the agent message needing a webhook
--      job, 0 for none), job_due (number, ms),
--      lost_agent ('' for none), lost_by (nil: nobody, a release), lost_epoch (number),
--      lost_seq (number), lost_reason (a release's, or nil),
--      received_keys (nil, or { history hash, index (all types), index (this type) }),
--      received_id, received_type, received_engagement, received_title,
--      mention_agents (nil, or the agents notes mention), mention_frames (the notice
--      for each, in order) }
local function apply_followups(q, f)
  if f.job_seq > 0 then
    -- NX: recording it again (a retried step) keeps the first due time.
    redis.call('ZADD', q[10], 'NX', f.job_due, f.job_seq .. ':' .. f.conversation)
  end
  if f.lost_agent ~= '' then
    redis.call(q[6], q[9] .. f.lost_agent, cmsgpack.pack({
      type = 'ownership_lost', conversation = f.conversation, by = f.lost_by,
      epoch = f.lost_epoch, seq = f.lost_seq, reason = f.lost_reason,
    }))
  end
  if f.mention_agents then
    for i, agent in ipairs(f.mention_agents) do
      redis.call(q[6], q[9] .. agent, f.mention_frames[i])
    end
  end
  if f.received_keys then
    local record = cmsgpack.pack({
      id = f.received_id, type = f.received_type, action = 'received',
      engagement = f.received_engagement, title = f.received_title, at = f.at,
    })
    redis.call('HSET', f.received_keys[1], f.received_id, record)
    redis.call('ZADD', f.received_keys[2], f.at, f.received_id)
    redis.call('ZADD', f.received_keys[3], f.at, f.received_id)
  end
end
