-- An erased conversation taken out of its tenant's queue (prepended to `apply.lua`, which
-- does it in the erasure's own step on a single Redis, and to `erase_queue.lua`, the
-- second step on a Redis Cluster, where the tenant's keys are another slot).
--
-- The entry becomes a tombstone at the erasure's `seq`: in no status's index, holding
-- nothing but the counters, so that a queue update decided before the erasure and
-- arriving after it (older `seq`, `update_inbox_entry` skips it) cannot bring the entry
-- — its preview — back. The conversation's changes leave the inbox stream, and its
-- pending webhook jobs their set; consoles are told to drop it.
--
-- q: { inbox hash, unanswered zset, active zset, finished zset, inbox event stream,
--      publish command, agents channel, (unused), (unused), webhook job set }
-- e: { conversation, seq (number), epoch (number), at (number, ms), frame (the packed
--      `erased` frame to publish to the agents) }
-- Returns { queue entries removed (0/1), inbox stream entries removed, webhook jobs
-- removed }; all 0 when this erasure (or a later one) was done before.
local function erase_queue_entry(q, e)
  local old_blob = redis.call('HGET', q[1], e.conversation)
  local entries = 0
  if old_blob then
    local old = cmsgpack.unpack(old_blob)
    if old.erased and old.seq >= e.seq then return { 0, 0, 0 } end
    if not old.erased then entries = 1 end
  end
  redis.call('HSET', q[1], e.conversation, cmsgpack.pack({
    conversation = e.conversation, status = 'new', epoch = e.epoch, seq = e.seq,
    disabled = false, since = 0, updated = e.at, erased = true,
  }))
  for i = 2, 4 do redis.call('ZREM', q[i], e.conversation) end

  -- The stream is bounded (its max length), read in pages.
  local changes, from = 0, '-'
  while true do
    local page = redis.call('XRANGE', q[5], from, '+', 'COUNT', 500)
    for i = 1, #page do
      local fields = page[i][2]
      local ok, frame = pcall(cmsgpack.unpack, fields[2])
      if ok and type(frame) == 'table' and frame.conversation == e.conversation then
        changes = changes + redis.call('XDEL', q[5], page[i][1])
      end
    end
    if #page < 500 then break end
    from = '(' .. page[#page][1]
  end

  -- Job members are `<seq>:<conversation>`.
  local jobs, suffix = 0, ':' .. e.conversation
  local members = redis.call('ZRANGE', q[10], 0, -1)
  for i = 1, #members do
    local m = members[i]
    if #m > #suffix and string.sub(m, -#suffix) == suffix
        and string.find(string.sub(m, 1, #m - #suffix), '^%d+$') then
      jobs = jobs + redis.call('ZREM', q[10], m)
    end
  end

  redis.call(q[6], q[7], e.frame)
  return { entries, changes, jobs }
end
