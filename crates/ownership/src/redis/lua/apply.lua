-- Runs after `inbox_entry.lua` (which defines `update_inbox_entry`), `erase_entry.lua`
-- (`erase_queue_entry`) and `trim.lua` (`trim_older_than`), all four one Redis function
-- library (see chathub_ownership::redis::APPLY), whose function is `apply` at the end.
-- Applies one or more commands (group commit: a node batches the commands that arrive
-- while its previous call is in flight), each to one conversation, in order, each
-- decided and written before the next is read: the Lua restatement of
-- chathub_domain::conversation::apply (a differential property test holds the two equal,
-- on single commands and on batches), plus history append, idempotency key and publish.
-- The whole call is one atomic step.
--
-- Every check of a command happens before its first write: a script that fails half-way
-- does not roll back, so nothing may be written until the outcome is known.
--
-- ARGV[1] commands in this call   ARGV[2] publish command: PUBLISH or SPUBLISH
-- ARGV[3] history max length (0: unlimited)   ARGV[4] history max age, ms (0: unlimited)
-- ARGV[5] dedup window, ms   ARGV[6] update the tenants' queues here too ('1' on a
--         single Redis; '0' on a Redis Cluster, where a queue is another slot than its
--         conversations and a second step does it)
-- ARGV[7] inbox stream max length   ARGV[8] lease of an offline-webhook job, ms ('0':
--         no webhook, no job)
-- Then BLOCK arguments per command, from a = HEADER + 1 + (i - 1) * BLOCK:
--   a+0  actor role: end_user | agent | admin | bot   a+1 actor id
--   a+2  privileges bit set (chat.take 1, chat.finish 2, chat.disable 4, ...)
--   a+3  command: send | note | finish | set_disabled | transfer | verdict | erase | expire
--        | edit | unsend | redact (amendments of an earlier message) | survey_answer
--        | release | auto_reply | handoff
--   a+4  send: the message event, packed by the node without `seq` and `at` (a fixmap
--        whose count includes them: the script appends them); verdict: the
--        `attachment_checked` event, packed the same way; note: the note event, packed
--        the same way; transfer: the new owner's id; edit, unsend, redact: the amendment
--        event (`edited`, `unsent`, `redacted`), packed the same way; finish: with the
--        tenant's survey, the `survey` event, packed the same way ('' none); release:
--        the reason; auto_reply: the `auto_reply` event, packed the same way; handoff:
--        the `handoff` event, packed the same way;
--        survey_answer: the `survey_answered` event without `survey` (its count includes
--        it: the script appends the open survey's seq before `seq` and `at`)
--   a+5  client_msg_id ('' for none)   a+6 seen epoch ('' for none; expire, auto_reply:
--        the seq it must still be at; an amendment: its target's seq)
--   a+7  disabled wanted ('1' / '0', set_disabled; release: the seq it must still be at;
--        an end user's send: the tenant's bot, which owns what it opens ('' none))
--   a+8 time, ms since the Unix epoch
--   a+9  conversation id   a+10 channel to publish on
--   a+11 content kind: text | engagement | attachment (send)   a+12 tenant-wide chat disabled ('1'/'0')
--   a+13 queue preview of the message ('' for none)   a+14 the tenant's agents channel
--   a+15 the agents' own channel prefix (`<prefix>:agent:{tenant}/`) (both '' when the
--        queue is another slot's, or when the command is of the same tenant as the one
--        before it in the call: then the tenant's keys are left out too, see below)
--   a+16 the follow-ups this step leaves pending, one letter each ('' for none):
--        'q' the queue entry (the second step on a Redis Cluster), 'a' the archive
--   a+17 the conversation as the pending set names it: `<tenant>/<conversation>`
--   a+18 an amendment: the node's copy of its target as history showed it (the whole
--        event, packed; '' none), for a message older than the stream holds
--   a+19 an amendment: the tenant's edit window, ms
--   a+20 `conversation` and its id, packed (a key and a value: every published frame,
--        queue entry and dedup receipt has it)   a+21 `at` and the time, packed (the
--        last field of every event the node packed)   a+22 with the queue updated here
--        and a preview: `updated` and the time, `preview` and a+13, packed (the tail of
--        the queue entry a plain message writes; '' otherwise)
--   a+23 how many keys the command has (below)
-- The node packs what it knows (a+20..a+22) because every argument of cmsgpack.pack is a
-- Lua string of its own, concatenated at the end: the entries below are concatenations
-- of those parts, of constants and of the few numbers only the script knows.
-- An amendment's message, in its current form, is kept in the conversation's `amended`
-- hash (named after the state key as its dedup keys are; same hash tag): field <seq>
-- the event as history shows it now, which replaces (or, removed from the stream,
-- stands for) the stream's entry; field `e:<seq>` the seqs of its edits, comma-joined.
-- An unsend or redaction deletes the message's entry and its edits' entries from the
-- stream (the text is gone, not hidden) and keeps their text-less forms there.
-- Keys per command, from its first k: k+0 state hash, k+1 history stream, k+2 dedup key
-- (same hash tag; erase: the read marks hash), k+3 the pending follow-ups of the conversation's shard (a sorted set
-- whose hash tag falls in the same slot; see chathub_store::RedisKeys::pending); with the
-- queue updated here and a+14 given: k+4..k+8 inbox hash, unanswered / active / finished
-- zsets, inbox event stream, k+9 the tenant's webhook job set (with a+14 '', left out:
-- the previous command's are used, as each argument is a Lua string made on every call,
-- ~700 instructions each); then, with an engagement sent by an agent, the end user's
-- engagement history hash and its two indexes (all types, this type), for the "received"
-- record (also for a survey answer granting a reward).
-- The state hash's `survey`: the seq of the survey open for the end user ('' none).
--
-- Returns one array per command, in order:
--   { 'done', status, owner ('' none), epoch, seq, disabled (0/1), survey (0 none),
--     queued_since (0: none), earlier ack ('': none; a retried send's first answer,
--     packed), event 1, event 2, ... (each packed, the bytes stored and published) }
--   { 'conflict', status, owner ('' none), epoch, seq, disabled (0/1), survey } (the
--     state the command met)   { 'refused', reason }
--   { 'erased', status, owner, epoch, seq, disabled, survey, history entries removed,
--     idempotency keys removed, read marks removed, queue entries removed, inbox stream
--     entries removed, webhook jobs removed } (the last three 0 when the queue is
--     another slot's: the erasure's second step does it)
--   { 'error', message } (a command the script does not know; the others still apply)

local HEADER, BLOCK = 8, 24

-- The call being run, set by `apply` (the registered function) each time: this code runs
-- once, when the library is loaded, so what varies per call lives in these upvalues.
local KEYS, ARGV
local publish_command, history_max_len, history_max_age, dedup_window, queue_inline
local inbox_max_len, job_lease

-- Privilege bits, as chathub_domain::Privileges::bits encodes them (pinned by a test).
local CHAT_TAKE, CHAT_FINISH, CHAT_DISABLE, ENGAGEMENT_SEND = 1, 2, 4, 8
local DATA_ERASE = 128

-- The command being applied: set by `apply_one`, read by the helpers below (upvalues
-- rather than closures per command: the helpers are created once per call).
local at, role, actor_id, privileges, next_state, events, packed_events
-- Its a+20 and a+21 (see the header).
local conversation_pair, at_pair
-- Where its tenant's queue keys start in KEYS and its agents' channels (a+14, a+15); where
-- its "received" record keys would start and where its keys end. A command of the same
-- tenant as the one before it in the call comes without the tenant's keys and channels
-- (the node leaves them out: '' at a+14): it uses the ones before.
local tenant_k, agents_channel, agents_prefix, engagement_k, keys_end

-- The statuses as MessagePack strings (fixstr), for entries written by concatenation.
local PACKED_STATUS = { new = '\163new', unanswered = '\170unanswered', active = '\166active',
  finished = '\168finished' }

-- What a bot may not do (chathub_domain::conversation: a bot does not run the team's
-- controls); its sends and handoffs have their own rules below.
local BOT_FORBIDDEN = { transfer = true, release = true, auto_reply = true,
  set_disabled = true, erase = true, expire = true }

-- `text + 0` rather than `tonumber(text)` on the hot path: Lua 5.1's tonumber parses its
-- argument twice (strtod each time), arithmetic coercion once. Only for text that is
-- always a number (what the node formats, what this script stored): anything else would
-- raise an error and end the whole call.
--
-- `privileges` is the command's bit set as the node sent it (text: most commands never
-- ask).
local function has(bit_value)
  return bit.band(privileges + 0, bit_value) ~= 0
end

local function push_status(cause, previous_owner, reason)
  next_state.seq = next_state.seq + 1
  local event = {
    event = 'status', status = next_state.status, owner = next_state.owner,
    epoch = next_state.epoch, disabled = next_state.disabled, cause = cause,
    previous_owner = previous_owner, reason = reason, by = { role = role, id = actor_id },
    seq = next_state.seq, at = at,
  }
  events[#events + 1] = event
  packed_events[#packed_events + 1] = cmsgpack.pack(event)
end

local function set_status(status, owner, cause, reason)
  local previous = next_state.owner
  if previous ~= owner then
    next_state.epoch = next_state.epoch + 1
  end
  next_state.status = status
  next_state.owner = owner
  -- The cycle the survey was about is over (a finish opens its own after this).
  next_state.survey = nil
  push_status(cause, previous, reason)
end

-- The node packed the event without its place and time: append them.
local function push_packed(kind, packed_body)
  next_state.seq = next_state.seq + 1
  events[#events + 1] = { event = kind, seq = next_state.seq }
  packed_events[#packed_events + 1] = packed_body .. '\163seq' .. cmsgpack.pack(next_state.seq)
    .. at_pair
end

local function push_message(packed_body)
  push_packed('message', packed_body)
end

-- The answer for an applied command (see the header): `s` the state after it.
local function done(s, queued_since, earlier_ack)
  local out = { 'done', s.status, s.owner or '', s.epoch, s.seq, s.disabled and 1 or 0,
    s.survey or 0, queued_since or 0, earlier_ack or '' }
  for i = 1, #packed_events do out[9 + i] = packed_events[i] end
  return out
end

-- The answer for a lost race: the state the command met.
local function conflict(s)
  return { 'conflict', s.status, s.owner or '', s.epoch, s.seq, s.disabled and 1 or 0,
    s.survey or 0 }
end

-- The tenant's queue keys and settings of the command being applied, as inbox_entry.lua
-- takes them: made only when needed (a plain message's entry is written without them).
local function queue_of()
  return { KEYS[tenant_k], KEYS[tenant_k + 1], KEYS[tenant_k + 2], KEYS[tenant_k + 3],
    KEYS[tenant_k + 4], publish_command, agents_channel, inbox_max_len, agents_prefix,
    KEYS[tenant_k + 5] }
end

-- The command's "received" record keys (an engagement an agent sent, a survey's
-- reward), or nil when the node sent none.
local function engagement_keys()
  if engagement_k >= keys_end then return nil end
  return { KEYS[engagement_k], KEYS[engagement_k + 1], KEYS[engagement_k + 2] }
end

-- One id inside a key, escaped as chathub_store::redis::part does.
local function key_part(id)
  return (string.gsub(string.gsub(id, '%%', '%%25'), ':', '%%3A'))
end

-- Erasure (chathub_domain's Command::Erase, decided by `apply_one`): only the counters
-- stay. The history goes, and with it the idempotency keys its messages left (named
-- after their authors and ids: chathub_store::RedisKeys::dedup) and the read marks. The
-- follow-up watermarks move to the erased seq and the marks of earlier follow-ups go:
-- nothing decided before the erasure is redone after it. The erased seq is kept
-- (`erased`, the cut-off clients are shown) and what is left to do elsewhere (the queue
-- on a Redis Cluster, the archive) is marked `e`.
local function erase(k, a, state, reason)
  local state_key, history_key, reads_key, pending_key = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local conversation_id = ARGV[a + 9]
  local epoch = state.epoch + 1
  local dedup_base = string.sub(state_key, 1, #state_key - #'state') .. 'dedup:'
  local history, dedup, from = 0, 0, '-'
  while true do
    local page = redis.call('XRANGE', history_key, from, '+', 'COUNT', 500)
    for i = 1, #page do
      local ok, event = pcall(cmsgpack.unpack, page[i][2][2])
      if ok and type(event) == 'table' and event.event == 'message' and event.client_msg_id
          and event.author then
        local who = (event.author.role == 'end_user' and 'end_user:' or 'agent:') .. event.author.id
        dedup = dedup + redis.call('DEL',
          dedup_base .. key_part(who) .. ':' .. key_part(event.client_msg_id))
      end
    end
    history = history + #page
    if #page < 500 then break end
    from = '(' .. page[#page][1]
  end
  redis.call('DEL', history_key)
  redis.call('DEL', string.sub(state_key, 1, #state_key - #'state') .. 'amended')
  local reads = redis.call('HLEN', reads_key)
  redis.call('DEL', reads_key)
  redis.call('HSET', state_key, 'status', 'new', 'owner', '', 'epoch', epoch, 'seq', state.seq,
    'disabled', '0', 'erased', state.seq, 'queued', state.seq, 'queued_ahead', '',
    'archived', state.seq, 'archived_ahead', '', 'erased_reason', reason, 'survey', '')
  redis.call('HDEL', state_key, 'since')
  local name = ARGV[a + 17]
  if name ~= '' then
    redis.call('ZREM', pending_key, 'q:' .. name, 'a:' .. name)
    if ARGV[a + 16] ~= '' then redis.call('ZADD', pending_key, 'NX', at, 'e:' .. name) end
  end
  local frame = cmsgpack.pack({ type = 'erased', conversation = conversation_id, seq = state.seq,
    reason = reason })
  redis.call(publish_command, ARGV[a + 10], frame)
  local queue = { 0, 0, 0 }
  if queue_inline then
    queue = erase_queue_entry(
      queue_of(),
      { conversation = conversation_id, seq = state.seq, epoch = epoch, at = at, frame = frame })
  end
  return { 'erased', 'new', '', epoch, state.seq, 0, 0, history, dedup, reads,
    queue[1], queue[2], queue[3] }
end

-- The amendment kinds and their events.
local AMENDMENTS = { edit = 'edited', unsend = 'unsent', redact = 'redacted' }

-- An amendment (chathub_domain::conversation::amend::check, restated): nil when it
-- applies, else the refusal. `target` is the message as history shows it now.
local function amendment_refusal(command, state, disabled, target, target_seq, window)
  if command == 'redact' and not has(DATA_ERASE) then return 'forbidden' end
  if not target or target_seq > state.seq or state.status == 'new' then return 'invalid_state' end
  if target.seq ~= target_seq or target.event ~= 'message' then return 'invalid_state' end
  if target.amended and target.amended.change ~= 'edited' then return 'invalid_state' end
  if command == 'redact' then return nil end
  local author = target.author
  if author.id ~= actor_id or ((author.role == 'end_user') ~= (role == 'end_user')) then
    return 'forbidden'
  end
  if command == 'edit' and target.content.kind ~= 'text' then return 'invalid_state' end
  if role == 'end_user' and disabled then return 'chat_disabled' end
  if window == 0 or at - target.at > window then return 'invalid_state' end
  return nil
end

-- Writes an applied amendment (chathub_domain::conversation::amend::fold, restated):
-- the message's current form in the `amended` hash; for a removal, its entry and its
-- edits' entries out of the stream, their text-less forms kept.
local function write_amendment(amended_key, history_key, command, target, amendment)
  local target_seq = target.seq
  target.amended = { change = amendment.event, seq = amendment.seq, at = at,
    by = { role = role, id = actor_id }, reason = amendment.reason }
  if command == 'edit' then
    target.content = { kind = 'text', text = amendment.text }
    local edits = redis.call('HGET', amended_key, 'e:' .. target_seq)
    redis.call('HSET', amended_key, target_seq, cmsgpack.pack(target),
      'e:' .. target_seq, edits and (edits .. ',' .. amendment.seq) or tostring(amendment.seq))
    return
  end
  target.content = { kind = 'removed' }
  redis.call('HSET', amended_key, target_seq, cmsgpack.pack(target))
  redis.call('XDEL', history_key, target_seq .. '-0')
  local edits = redis.call('HGET', amended_key, 'e:' .. target_seq)
  if edits then
    for edit_seq in string.gmatch(edits, '%d+') do
      local packed = redis.call('HGET', amended_key, edit_seq)
      if not packed then
        local entry = redis.call('XRANGE', history_key, edit_seq .. '-0', edit_seq .. '-0')
        if #entry == 1 then packed = entry[1][2][2] end
      end
      if packed then
        local edit = cmsgpack.unpack(packed)
        edit.text = nil
        redis.call('HSET', amended_key, edit_seq, cmsgpack.pack(edit))
        redis.call('XDEL', history_key, edit_seq .. '-0')
      end
    end
    redis.call('HDEL', amended_key, 'e:' .. target_seq)
  end
end

local function apply_one(k, a, key_count)
  local state_key, history_key, dedup_key, pending_key = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  role, actor_id, privileges = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local command, body, client_msg_id = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local at_text = ARGV[a + 8]
  at = at_text + 0
  local conversation_id = ARGV[a + 9]
  local content_kind = ARGV[a + 11]
  conversation_pair, at_pair = ARGV[a + 20], ARGV[a + 21]
  if ARGV[a + 14] ~= '' then
    tenant_k, agents_channel, agents_prefix = k + 4, ARGV[a + 14], ARGV[a + 15]
    engagement_k = k + 10
  elseif queue_inline and not tenant_k then
    return { 'error', 'the first command of a call carries its tenant keys' }
  else
    engagement_k = k + 4
  end
  keys_end = k + key_count

  -- `since`: when the conversation's status last changed, as its queue entry holds it
  -- (written with the entry by this script, on a single Redis), so that a plain message
  -- rewrites the entry without reading it.
  local h = redis.call('HMGET', state_key, 'status', 'owner', 'epoch', 'seq', 'disabled', 'since',
    'survey')
  local state = {
    status = h[1] or 'new',
    owner = (h[2] and h[2] ~= '') and h[2] or nil,
    epoch = h[3] and h[3] + 0 or 0,
    seq = h[4] and h[4] + 0 or 0,
    disabled = h[5] == '1',
    -- '': no survey open.
    survey = (h[7] and h[7] ~= '') and h[7] + 0 or nil,
  }
  local disabled = state.disabled or ARGV[a + 12] == '1'

  events, packed_events = {}, {}
  local amended_key, amend_target
  -- A retried send answers what the first one did.
  if (command == 'send' or command == 'note') and client_msg_id ~= '' then
    local ack = redis.call('GET', dedup_key)
    if ack then return done(state, nil, ack) end
  end

  next_state = {
    status = state.status, owner = state.owner, epoch = state.epoch, seq = state.seq,
    disabled = state.disabled, survey = state.survey,
  }

  if command == 'verdict' then
    -- The scanner's verdict on an attachment (the server issues it): no rule, whoever
    -- the actor and whatever the status; it only takes the next seq. A conversation
    -- with no event yet has no message it could be about: nothing.
    if state.status ~= 'new' then push_packed('attachment_checked', body) end
  elseif AMENDMENTS[command] then
    local target_seq = tonumber(ARGV[a + 6])
    amended_key = string.sub(state_key, 1, #state_key - #'state') .. 'amended'
    -- The message as history shows it now: amended already, as the stream holds it, or
    -- (older than the stream) as the node read it.
    local packed = redis.call('HGET', amended_key, target_seq)
    if not packed then
      local entry = redis.call('XRANGE', history_key, target_seq .. '-0', target_seq .. '-0')
      if #entry == 1 then packed = entry[1][2][2] end
    end
    -- The node's copy only for what the stream no longer holds and no erasure took.
    if not packed and ARGV[a + 18] ~= ''
        and target_seq > tonumber(redis.call('HGET', state_key, 'erased') or '0') then
      packed = ARGV[a + 18]
    end
    amend_target = packed and cmsgpack.unpack(packed) or nil
    local refusal = amendment_refusal(command, state, disabled, amend_target, target_seq,
      tonumber(ARGV[a + 19]))
    if refusal then return { 'refused', refusal } end
    push_packed(AMENDMENTS[command], body)
  elseif command == 'survey_answer' then
    -- Only the end user answers, once: the answer closes the survey.
    if role ~= 'end_user' then return { 'refused', 'forbidden' } end
    if not state.survey then return { 'refused', 'invalid_state' } end
    push_packed('survey_answered', body .. cmsgpack.pack('survey', state.survey))
    next_state.survey = nil
  elseif role == 'end_user' then
    if command ~= 'send' then return { 'refused', 'forbidden' } end
    if content_kind == 'engagement' then return { 'refused', 'forbidden' } end
    if disabled then return { 'refused', 'chat_disabled' } end
    -- With the tenant's bot, it answers first: it owns the new cycle.
    local bot = ARGV[a + 7]
    local status, owner = 'unanswered', nil
    if bot ~= '' then status, owner = 'active', bot end
    if state.status == 'new' then
      set_status(status, owner, 'opened')
    elseif state.status == 'finished' then
      set_status(status, owner, 'reopened')
    end
    push_message(body)
  elseif command == 'handoff' then
    -- The owning bot gives it to the humans, on the epoch it saw.
    if role ~= 'bot' then return { 'refused', 'forbidden' } end
    if tonumber(ARGV[a + 6]) ~= state.epoch then return conflict(state) end
    if state.status ~= 'active' or state.owner ~= actor_id then return { 'refused', 'invalid_state' } end
    set_status('unanswered', nil, 'handed_off')
    push_packed('handoff', body)
  elseif role == 'bot' and BOT_FORBIDDEN[command] then
    return { 'refused', 'forbidden' }
  elseif role == 'bot' and command == 'send' then
    -- The fence first (a human's take moved the epoch), then: a bot never takes.
    if ARGV[a + 6] == '' then return { 'refused', 'missing_epoch' } end
    local seen_epoch = ARGV[a + 6] + 0
    if content_kind == 'engagement' and not has(ENGAGEMENT_SEND) then return { 'refused', 'forbidden' } end
    if seen_epoch ~= state.epoch then return conflict(state) end
    if state.status ~= 'active' or state.owner ~= actor_id then return { 'refused', 'forbidden' } end
    push_message(body)
  elseif command == 'send' then
    if ARGV[a + 6] == '' then return { 'refused', 'missing_epoch' } end
    local seen_epoch = ARGV[a + 6] + 0
    if content_kind == 'engagement' and not has(ENGAGEMENT_SEND) then return { 'refused', 'forbidden' } end
    local owns = state.status == 'active' and state.owner == actor_id
    if not owns then
      if not has(CHAT_TAKE) then return { 'refused', 'forbidden' } end
      if disabled then return { 'refused', 'chat_disabled' } end
    end
    if seen_epoch ~= state.epoch then return conflict(state) end
    if not owns then
      local cause = (state.status == 'active') and 'taken_over' or 'taken'
      set_status('active', actor_id, cause)
    end
    push_message(body)
  elseif command == 'note' then
    -- An agent's private note: the next seq, nothing else (no thread yet: nothing).
    if state.status == 'new' then return { 'refused', 'invalid_state' } end
    push_packed('note', body)
  elseif command == 'finish' then
    if state.status == 'new' or state.status == 'finished' then return { 'refused', 'invalid_state' } end
    local owns = state.owner == actor_id
    if not has(CHAT_FINISH) or not (owns or role == 'admin') then return { 'refused', 'forbidden' } end
    if tonumber(ARGV[a + 6]) ~= state.epoch then return conflict(state) end
    set_status('finished', nil, 'finished')
    -- With the tenant's survey, the end user is asked it: open until answered.
    if body ~= '' then
      push_packed('survey', body)
      next_state.survey = next_state.seq
    end
  elseif command == 'release' then
    -- Back to the queue (an admin, or the stall policy acting as one), only while
    -- nothing happened since the releaser looked.
    if role ~= 'admin' then return { 'refused', 'forbidden' } end
    if state.status ~= 'active' then return { 'refused', 'invalid_state' } end
    if tonumber(ARGV[a + 6]) ~= state.epoch then return conflict(state) end
    if tonumber(ARGV[a + 7]) ~= state.seq then return { 'refused', 'invalid_state' } end
    set_status('unanswered', nil, 'released', ARGV[a + 4])
  elseif command == 'auto_reply' then
    -- The business hours' reply (the server acting as an admin): only to someone still
    -- waiting, on the seq the server saw.
    if role ~= 'admin' then return { 'refused', 'forbidden' } end
    if state.status ~= 'unanswered' then return { 'refused', 'invalid_state' } end
    if tonumber(ARGV[a + 6]) ~= state.seq then return { 'refused', 'invalid_state' } end
    push_packed('auto_reply', body)
  elseif command == 'transfer' then
    if state.status ~= 'active' and state.status ~= 'unanswered' then return { 'refused', 'invalid_state' } end
    local owns = state.status == 'active' and state.owner == actor_id
    if not (owns or role == 'admin') then return { 'refused', 'forbidden' } end
    if tonumber(ARGV[a + 6]) ~= state.epoch then return conflict(state) end
    local to = ARGV[a + 4]
    -- To the owner it already has: nothing to hand over.
    if state.owner == to then return { 'refused', 'invalid_state' } end
    set_status('active', to, 'transferred')
  elseif command == 'erase' then
    if not has(DATA_ERASE) then return { 'refused', 'forbidden' } end
    -- No event yet, or erased already: nothing to erase.
    if state.status == 'new' then return done(next_state, nil, nil) end
    return erase(k, a, state, 'erasure')
  elseif command == 'expire' then
    -- The retention sweep's erasure, decided on the seq it saw the conversation idle at
    -- (ARGV[a + 6]): anything since keeps it.
    if not has(DATA_ERASE) then return { 'refused', 'forbidden' } end
    if state.status == 'new' then return done(next_state, nil, nil) end
    if tonumber(ARGV[a + 6]) ~= state.seq then return { 'refused', 'invalid_state' } end
    return erase(k, a, state, 'retention')
  elseif command == 'set_disabled' then
    if not has(CHAT_DISABLE) then return { 'refused', 'forbidden' } end
    local want_disabled = ARGV[a + 7] == '1'
    if state.disabled ~= want_disabled then
      next_state.disabled = want_disabled
      push_status(want_disabled and 'disabled' or 'enabled', nil)
    end
  else
    return { 'error', 'unknown command ' .. command }
  end

  if #events == 0 then
    return done(next_state, nil, nil)
  end

  -- Decided; now write. State first, then history, dedup, publish.
  local status_changed = events[1].event == 'status'
  local since = h[6] and h[6] + 0
  if status_changed then
    -- '' is "no owner" to every reader of the hash: one write instead of a write and a
    -- delete. A status change starts the queue entry's `since`.
    since = at
    redis.call('HSET', state_key, 'status', next_state.status, 'owner', next_state.owner or '',
      'epoch', next_state.epoch, 'seq', next_state.seq,
      'disabled', next_state.disabled and '1' or '0', 'since', since,
      'survey', next_state.survey or '')
  elseif next_state.survey ~= state.survey then
    -- A survey's answer: the survey closes.
    redis.call('HSET', state_key, 'seq', next_state.seq, 'survey', next_state.survey or '')
  else
    -- A plain message (the common command) moves only the seq.
    redis.call('HSET', state_key, 'seq', string.format('%d', next_state.seq))
  end
  -- What a node still owes after this step, recorded with it: if the node dies before
  -- settling it, a sweeper finds it here. NX: the mark keeps the time of its oldest
  -- unsettled change.
  local pending_marks = ARGV[a + 16]
  for i = 1, #pending_marks do
    redis.call('ZADD', pending_key, 'NX', at_text, string.sub(pending_marks, i, i) .. ':' .. ARGV[a + 17])
  end
  for i = 1, #events do
    if history_max_len ~= '0' then
      redis.call('XADD', history_key, 'MAXLEN', '~', history_max_len, string.format('%d-0', events[i].seq),
        'e', packed_events[i], 't', at_text)
    else
      redis.call('XADD', history_key, string.format('%d-0', events[i].seq), 'e', packed_events[i],
        't', at_text)
    end
  end
  if amend_target then
    local amendment = cmsgpack.unpack(packed_events[1])
    write_amendment(amended_key, history_key, command, amend_target, amendment)
  end
  -- Age limit: drop a few of the oldest entries per command (amortised).
  if history_max_age > 0 then
    trim_older_than(history_key, at - history_max_age, nil)
  end

  if (command == 'send' or command == 'note') and client_msg_id ~= '' then
    -- The answer every retry gets (chathub_store::Receipt).
    -- A fixmap of 5, concatenated (see the header; owner nil: none).
    local pack = cmsgpack.pack
    redis.call('SET', dedup_key, '\133' .. conversation_pair .. '\163seq' .. pack(next_state.seq)
      .. '\166status' .. PACKED_STATUS[next_state.status]
      .. '\165owner' .. (next_state.owner and pack(next_state.owner) or '\192')
      .. '\165epoch' .. pack(next_state.epoch), 'PX', dedup_window)
  end

  -- The published frame is the event's map with `type` and `conversation` added: spliced
  -- into the packed event (a fixmap: events have at most 10 fields) rather than re-packed.
  local channel = ARGV[a + 10]
  for i = 1, #packed_events do
    local packed = packed_events[i]
    local header = string.byte(packed, 1)
    if header < 0x80 or header > 0x8d then
      return { 'error', 'event ' .. i .. ' of ' .. conversation_id .. ' is not a fixmap' }
    end
    redis.call(publish_command, channel,
      string.char(header + 2) .. '\164type\165event' .. conversation_pair .. string.sub(packed, 2))
  end

  if not queue_inline then
    return done(next_state, nil, nil)
  end

  -- The tenant's queue, in the same step (a single Redis).
  local author_is_agent = events[#events].event == 'message' and role ~= 'end_user'
  if author_is_agent and (job_lease > 0 or content_kind == 'engagement') then
    local followups = { conversation = conversation_id, at = at, lost_agent = '', job_seq = 0 }
    local message_seq = events[#events].seq
    if job_lease > 0 then
      followups.job_seq, followups.job_due = message_seq, at + job_lease
    end
    local received_keys = content_kind == 'engagement' and engagement_keys()
    if received_keys then
      -- The end user's "received" record: the card, from the message as sent.
      local card = cmsgpack.unpack(body .. cmsgpack.pack('seq', 0, 'at', 0)).content.engagement
      followups.received_keys = received_keys
      followups.received_id = 'chat:' .. conversation_id .. ':' .. message_seq
      followups.received_type, followups.received_engagement = card.type, card.id
      followups.received_title = card.name
    end
    if status_changed then
      local taken = events[1]
      if (taken.cause == 'taken_over' or taken.cause == 'transferred') and taken.previous_owner then
        followups.lost_agent, followups.lost_by = taken.previous_owner, taken.owner
        followups.lost_epoch, followups.lost_seq = taken.epoch, taken.seq
      end
    end
    apply_followups(queue_of(), followups)
  elseif status_changed then
    local taken = events[1]
    if (taken.cause == 'taken_over' or taken.cause == 'transferred' or taken.cause == 'released')
        and taken.previous_owner then
      apply_followups(queue_of(), {
        conversation = conversation_id, at = at, job_seq = 0,
        lost_agent = taken.previous_owner, lost_by = taken.owner,
        lost_epoch = taken.epoch, lost_seq = taken.seq, lost_reason = taken.reason,
      })
    end
  end

  if job_lease > 0 and events[#events].event == 'survey' then
    -- The survey a finish asks: the end user's push if they are offline.
    apply_followups(queue_of(), {
      conversation = conversation_id, at = at, lost_agent = '',
      job_seq = events[#events].seq, job_due = at + job_lease,
    })
  end

  if command == 'survey_answer' and engagement_keys() then
    -- The reward the answer granted: the end user's "received" record.
    local answer = cmsgpack.unpack(packed_events[1])
    local card = answer.reward
    apply_followups(queue_of(), {
      conversation = conversation_id, at = at, job_seq = 0, lost_agent = '',
      received_keys = engagement_keys(),
      received_id = 'chat:' .. conversation_id .. ':' .. answer.seq,
      received_type = card.type, received_engagement = card.id, received_title = card.name,
    })
  end

  if events[#events].event == 'note' then
    -- The agents a note mentions are told (chathub_ownership::frames::mentions).
    local note = cmsgpack.unpack(body .. cmsgpack.pack('seq', 0, 'at', 0))
    if note.mentions and #note.mentions > 0 then
      local frame = cmsgpack.pack({
        type = 'mention', conversation = conversation_id, seq = events[#events].seq,
        by = note.author, text = note.text,
      })
      local frames = {}
      for i = 1, #note.mentions do frames[i] = frame end
      -- With a webhook, the job of the push to the mentioned agents who are offline.
      local followups = {
        conversation = conversation_id, at = at, job_seq = 0, lost_agent = '',
        mention_agents = note.mentions,
        mention_frames = frames,
      }
      if job_lease > 0 then
        followups.job_seq, followups.job_due = events[#events].seq, at + job_lease
      end
      apply_followups(queue_of(), followups)
    end
  end

  if not status_changed and since and ARGV[a + 22] ~= '' then
    -- Fast path: only the entry's seq, time and preview move (its status, owner, flags
    -- and `since` are the state's), so it is written without reading it; the index moves
    -- only where the score is the last update (lua/inbox_entry.lua, score_of).
    -- A fixmap of 9, concatenated as the dedup receipt above.
    local pack = cmsgpack.pack
    redis.call('HSET', KEYS[tenant_k], conversation_id, '\137' .. conversation_pair
      .. '\166status' .. PACKED_STATUS[next_state.status]
      .. '\165owner' .. (next_state.owner and pack(next_state.owner) or '\192')
      .. '\165epoch' .. pack(next_state.epoch) .. '\163seq' .. pack(next_state.seq)
      .. '\168disabled' .. (next_state.disabled and '\195' or '\194')
      .. '\165since' .. pack(since) .. ARGV[a + 22])
    if next_state.status ~= 'unanswered' then
      local key = (next_state.status == 'active') and KEYS[tenant_k + 2] or KEYS[tenant_k + 3]
      redis.call('ZADD', key, at_text, conversation_id)
    end
    return done(next_state, nil, nil)
  end
  local _, queued_since, entry_since = update_inbox_entry(
    queue_of(),
    {
      conversation = conversation_id, seq = next_state.seq, status = next_state.status,
      owner = next_state.owner or '', epoch = next_state.epoch,
      disabled = next_state.disabled and '1' or '0', at = at,
      status_changed = status_changed, preview = ARGV[a + 13],
    })
  if not status_changed and entry_since then
    -- An entry written before `since` was kept in the state: keep it from now on.
    redis.call('HSET', state_key, 'since', entry_since)
  end
  return done(next_state, queued_since, nil)
end

-- The entry point (registered as the library's function by
-- chathub_ownership::redis::APPLY): `keys` and `args` are the header's KEYS and ARGV.
local function apply(keys, args)
  KEYS, ARGV = keys, args
  local commands = ARGV[1] + 0
  publish_command = ARGV[2]
  history_max_len, history_max_age = ARGV[3], ARGV[4] + 0
  dedup_window = ARGV[5]
  queue_inline = ARGV[6] == '1'
  inbox_max_len = ARGV[7]
  job_lease = ARGV[8] + 0
  tenant_k, agents_channel, agents_prefix = nil, nil, nil
  local results = {}
  local k = 1
  for i = 1, commands do
    local a = HEADER + 1 + (i - 1) * BLOCK
    local key_count = ARGV[a + BLOCK - 1] + 0
    results[i] = apply_one(k, a, key_count)
    k = k + key_count
  end
  return results
end
