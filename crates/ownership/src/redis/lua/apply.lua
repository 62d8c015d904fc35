-- Runs after `inbox_entry.lua` (which defines `update_inbox_entry`) and `trim.lua`
-- (`trim_older_than`).
-- Applies one command to one conversation atomically: the Lua restatement of
-- chathub_domain::conversation::apply (a differential property test holds the two equal),
-- plus history append, idempotency key and publish, in one step.
--
-- Every check happens before the first write: a script that fails half-way does not roll
-- back, so nothing may be written until the outcome is known.
--
-- KEYS[1] state hash   KEYS[2] history stream   KEYS[3] dedup key (same hash tag)
-- KEYS[4] the pending follow-ups of the conversation's shard (a sorted set whose hash tag
--         falls in the same slot; see chathub_store::RedisKeys::pending)
-- ARGV[1]  actor role: end_user | agent | admin
-- ARGV[2]  actor id
-- ARGV[3]  privileges bit set (chat.take 1, chat.finish 2, chat.disable 4, ...)
-- ARGV[4]  command: send | finish | set_disabled
-- ARGV[5]  message content (send): MessagePack map, embedded as it is
-- ARGV[6]  client_msg_id ('' for none)
-- ARGV[7]  seen epoch ('' for none)
-- ARGV[8]  disabled wanted ('1' / '0', set_disabled)
-- ARGV[9]  time, ms since the Unix epoch
-- ARGV[10] conversation id
-- ARGV[11] channel to publish on
-- ARGV[12] publish command: PUBLISH or SPUBLISH
-- ARGV[13] history max length (0: unlimited)
-- ARGV[14] history max age, ms (0: unlimited)
-- ARGV[15] dedup window, ms
-- ARGV[16] content kind: text | engagement (send)
-- ARGV[17] tenant-wide chat disabled ('1' / '0')
-- ARGV[18] update the tenant's queue here too ('1' on a single Redis, with KEYS[5..9]:
--          inbox hash, unanswered / active / finished zsets, inbox event stream; '0' on
--          a Redis Cluster, where the queue is another slot and a second step does it)
-- ARGV[19] queue preview of the message ('' for none)   ARGV[20] agents channel
-- ARGV[21] inbox stream max length   ARGV[22] the agents' own channel prefix
--          (`<prefix>:agent:{tenant}/`)   ARGV[23] lease of an offline-webhook job, ms
--          ('0': no webhook, no job), with KEYS[10] the tenant's job set;
--          with an engagement sent by an agent, KEYS[11..13]:
--          the end user's engagement history hash and its two indexes (all types, this
--          type), for the "received" record (ARGV[19..23] are '' when ARGV[18] is '0')
-- ARGV[24] the follow-ups this step leaves pending, one letter each ('' for none):
--          'q' the queue entry (the second step on a Redis Cluster), 'a' the archive
-- ARGV[25] the conversation as the pending set names it: `<tenant>/<conversation>`
-- Returns a MessagePack map: {outcome = done|conflict|refused, ...}; `events` holds each
-- event as packed bytes (a MessagePack string).

-- Every key and argument by name (nothing below reads KEYS[i] or ARGV[i]).
local state_key, history_key, dedup_key, pending_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local queue_keys = { KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9] }
local jobs_key = KEYS[10]
local received_keys = KEYS[11] and { KEYS[11], KEYS[12], KEYS[13] } or nil
local role, actor_id, privileges = ARGV[1], ARGV[2], tonumber(ARGV[3])
local command, content_packed, client_msg_id = ARGV[4], ARGV[5], ARGV[6]
local seen_epoch = tonumber(ARGV[7])
local want_disabled = ARGV[8] == '1'
local at_text = ARGV[9]
local at = tonumber(at_text)
local conversation_id, channel, publish_command = ARGV[10], ARGV[11], ARGV[12]
local history_max_len, history_max_age = ARGV[13], tonumber(ARGV[14])
local dedup_window = tonumber(ARGV[15])
local content_kind = ARGV[16]
local tenant_disabled = ARGV[17] == '1'
local queue_inline = ARGV[18] == '1'
local preview, agents_channel, inbox_max_len = ARGV[19], ARGV[20], ARGV[21]
local agent_channel_prefix = ARGV[22]
local job_lease = tonumber(ARGV[23] ~= '' and ARGV[23] or '0')
local pending_marks, pending_member = ARGV[24], ARGV[25]

-- Privilege bits, as chathub_domain::Privileges::bits encodes them (pinned by a test).
local CHAT_TAKE, CHAT_FINISH, CHAT_DISABLE, ENGAGEMENT_SEND = 1, 2, 4, 8

local function has(bit_value)
  return bit.band(privileges, bit_value) ~= 0
end

local h = redis.call('HMGET', state_key, 'status', 'owner', 'epoch', 'seq', 'disabled')
local state = {
  status = h[1] or 'new',
  owner = (h[2] and h[2] ~= '') and h[2] or nil,
  epoch = tonumber(h[3] or '0'),
  seq = tonumber(h[4] or '0'),
  disabled = h[5] == '1',
}
local disabled = state.disabled or tenant_disabled

local function state_map(s)
  return { status = s.status, owner = s.owner, epoch = s.epoch, seq = s.seq, disabled = s.disabled }
end

-- A retried send answers what the first one did.
if command == 'send' and client_msg_id ~= '' then
  local ack = redis.call('GET', dedup_key)
  if ack then
    return cmsgpack.pack({ outcome = 'done', state = state_map(state), ack = cmsgpack.unpack(ack) })
  end
end

local function refused(reason)
  return cmsgpack.pack({ outcome = 'refused', refusal = reason })
end

local function conflict()
  return cmsgpack.pack({ outcome = 'conflict', owner = state.owner, epoch = state.epoch })
end

local by = { role = role, id = actor_id }
local events = {}
local next_state = state_map(state)

local function push(event)
  next_state.seq = next_state.seq + 1
  event.seq = next_state.seq
  event.at = at
  events[#events + 1] = event
end

local function push_status(cause, previous_owner)
  push({
    event = 'status', status = next_state.status, owner = next_state.owner,
    epoch = next_state.epoch, disabled = next_state.disabled, cause = cause,
    previous_owner = previous_owner, by = by,
  })
end

local function set_status(status, owner, cause)
  local previous = next_state.owner
  if previous ~= owner then
    next_state.epoch = next_state.epoch + 1
  end
  next_state.status = status
  next_state.owner = owner
  push_status(cause, previous)
end

local function message()
  push({
    event = 'message', author = by,
    client_msg_id = (client_msg_id ~= '') and client_msg_id or nil,
    content = cmsgpack.unpack(content_packed),
  })
end

if role == 'end_user' then
  if command ~= 'send' then return refused('forbidden') end
  if content_kind == 'engagement' then return refused('forbidden') end
  if disabled then return refused('chat_disabled') end
  if state.status == 'new' then
    set_status('unanswered', nil, 'opened')
  elseif state.status == 'finished' then
    set_status('unanswered', nil, 'reopened')
  end
  message()
elseif command == 'send' then
  if seen_epoch == nil then return refused('missing_epoch') end
  if content_kind == 'engagement' and not has(ENGAGEMENT_SEND) then return refused('forbidden') end
  local owns = state.status == 'active' and state.owner == actor_id
  if not owns then
    if not has(CHAT_TAKE) then return refused('forbidden') end
    if disabled then return refused('chat_disabled') end
  end
  if seen_epoch ~= state.epoch then return conflict() end
  if not owns then
    local cause = (state.status == 'active') and 'taken_over' or 'taken'
    set_status('active', actor_id, cause)
  end
  message()
elseif command == 'finish' then
  if state.status == 'new' or state.status == 'finished' then return refused('invalid_state') end
  local owns = state.owner == actor_id
  if not has(CHAT_FINISH) or not (owns or role == 'admin') then return refused('forbidden') end
  if seen_epoch ~= state.epoch then return conflict() end
  set_status('finished', nil, 'finished')
elseif command == 'set_disabled' then
  if not has(CHAT_DISABLE) then return refused('forbidden') end
  if state.disabled ~= want_disabled then
    next_state.disabled = want_disabled
    push_status(want_disabled and 'disabled' or 'enabled', nil)
  end
else
  return redis.error_reply('unknown command ' .. command)
end

-- Decided; now write. State first, then history, dedup, publish.
-- Each event is packed once: the same bytes go to history, into the published frame and
-- back to the caller.
local packed_events = {}
if #events > 0 then
  -- '' is "no owner" to every reader of the hash: one write instead of a write and a delete.
  redis.call('HSET', state_key, 'status', next_state.status, 'owner', next_state.owner or '',
    'epoch', next_state.epoch, 'seq', next_state.seq,
    'disabled', next_state.disabled and '1' or '0')
  -- What a node still owes after this step, recorded with it: if the node dies before
  -- settling it, a sweeper finds it here. NX: the mark keeps the time of its oldest
  -- unsettled change.
  for i = 1, #pending_marks do
    redis.call('ZADD', pending_key, 'NX', at, string.sub(pending_marks, i, i) .. ':' .. pending_member)
  end
  for i, event in ipairs(events) do
    local packed = cmsgpack.pack(event)
    packed_events[i] = packed
    if history_max_len ~= '0' then
      redis.call('XADD', history_key, 'MAXLEN', '~', history_max_len, event.seq .. '-0', 'e', packed, 't', at_text)
    else
      redis.call('XADD', history_key, event.seq .. '-0', 'e', packed, 't', at_text)
    end
  end
  -- Age limit: drop a few of the oldest entries per command (amortised).
  if history_max_age > 0 then
    trim_older_than(history_key, at - history_max_age, nil)
  end
end

local ack = nil
if command == 'send' then
  local message_seq = next_state.seq
  ack = {
    conversation = conversation_id, seq = message_seq, status = next_state.status,
    owner = next_state.owner, epoch = next_state.epoch,
  }
  if client_msg_id ~= '' then
    redis.call('SET', dedup_key, cmsgpack.pack(ack), 'PX', dedup_window)
  end
end

-- The published frame is the event's map with `type` and `conversation` added: spliced
-- into the packed event (a fixmap: events have at most 10 fields) rather than re-packed.
local frame_fields = (#events > 0) and cmsgpack.pack('type', 'event', 'conversation', conversation_id)
for i, event in ipairs(events) do
  local packed = packed_events[i]
  local header = string.byte(packed, 1)
  local frame
  if header >= 0x80 and header <= 0x8d then
    frame = string.char(header + 2) .. frame_fields .. string.sub(packed, 2)
  else
    frame = { type = 'event', conversation = conversation_id }
    for k, v in pairs(event) do frame[k] = v end
    frame = cmsgpack.pack(frame)
  end
  redis.call(publish_command, channel, frame)
end

-- When the step took the conversation out of the unanswered queue: since when it waited.
local queued_since = nil
if queue_inline and #events > 0 then
  local status_changed = false
  local followups = { conversation = conversation_id, at = at, lost_agent = '', job_seq = 0 }
  for _, event in ipairs(events) do
    if event.event == 'status' then
      status_changed = true
      if event.cause == 'taken_over' and event.previous_owner then
        followups.lost_agent, followups.lost_by = event.previous_owner, event.owner
        followups.lost_epoch, followups.lost_seq = event.epoch, event.seq
      end
    elseif event.event == 'message' and event.author.role ~= 'end_user' then
      if job_lease > 0 then
        followups.job_seq, followups.job_due = event.seq, at + job_lease
      end
    end
    if event.event == 'message' and event.author.role ~= 'end_user'
        and event.content.kind == 'engagement' and received_keys then
      local card = event.content.engagement
      followups.received_keys = received_keys
      followups.received_id = 'chat:' .. conversation_id .. ':' .. event.seq
      followups.received_type, followups.received_engagement = card.type, card.id
      followups.received_title = card.name
    end
  end
  local q = { queue_keys[1], queue_keys[2], queue_keys[3], queue_keys[4], queue_keys[5],
    publish_command, agents_channel, inbox_max_len, agent_channel_prefix, jobs_key }
  apply_followups(q, followups)
  local _
  _, queued_since = update_inbox_entry(
    q,
    {
      conversation = conversation_id, seq = next_state.seq, status = next_state.status,
      owner = next_state.owner or '', epoch = next_state.epoch,
      disabled = next_state.disabled and '1' or '0', at = at,
      status_changed = status_changed, preview = preview,
    })
end

return cmsgpack.pack({
  outcome = 'done', state = next_state, ack = ack, events = packed_events,
  queued_since = queued_since,
})
