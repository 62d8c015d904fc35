-- The second step on a Redis Cluster (the tenant's queue lives in another slot than the
-- conversation): the queue entries of one or more conversations of one tenant, in order
-- (a node batches the updates it has pending for a tenant into one call), with what each
-- command owes beyond its events (the previous owner's notice, the "received" record).
-- Runs after `inbox_entry.lua`, which defines `update_inbox_entry` and `apply_followups`.
--
-- KEYS[1] inbox hash  KEYS[2] unanswered zset  KEYS[3] active zset  KEYS[4] finished zset
-- KEYS[5] inbox event stream   KEYS[6] the tenant's webhook job set; then, for each
-- update with a "received" record, its three
-- keys (history hash, index of all types, index of its type). All under the tenant's
-- hash tag.
-- ARGV[1] publish command   ARGV[2] agents channel   ARGV[3] inbox stream max length
-- ARGV[4] the agents' own channel prefix   ARGV[5] lease of a webhook job (ms)
-- then 22 arguments per update, in order of application:
--   conversation, seq, status, owner ('' for none), epoch, disabled ('1'/'0'),
--   time of the change (ms), status changed ('1'/'0': also publish a queue frame),
--   preview ('' to keep the old one),
--   lost agent ('' for none), lost to ('' nobody: a release), lost epoch, lost seq,
--   lost reason (a release's; '' none),
--   received: index of its first key in KEYS ('0' for none), id, type, engagement, title,
--   webhook job: the message's seq ('0' for none) (due: the change's time + ARGV[5]),
--   the agents notes mention (comma-separated, '' for none), and their `mention`
--   notices (the packed frames one after the other, one per agent, in order)
-- Returns, per update in order, { changed (1, or 0 when it was not newer than the entry
-- and skipped), the time the conversation had entered the unanswered queue when the
-- update took it out of it (else 0) }.

local inbox_key, unanswered_key, active_key, finished_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local inbox_events_key = KEYS[5]
local publish_command, agents_channel, inbox_max_len = ARGV[1], ARGV[2], ARGV[3]
local agent_channel_prefix = ARGV[4]
local job_lease = tonumber(ARGV[5])
-- Each update is read from its arguments by name, starting at `base`.
local FIRST_UPDATE, PER_UPDATE = 6, 22

local q = { inbox_key, unanswered_key, active_key, finished_key, inbox_events_key,
  publish_command, agents_channel, inbox_max_len, agent_channel_prefix, KEYS[6] }
local results = {}
for base = FIRST_UPDATE, #ARGV, PER_UPDATE do
  local conversation, at = ARGV[base], tonumber(ARGV[base + 6])
  local received_key = tonumber(ARGV[base + 14])
  local mention_agents, mention_frames = nil, nil
  if ARGV[base + 20] ~= '' then
    mention_agents, mention_frames = {}, {}
    for agent in string.gmatch(ARGV[base + 20], '[^,]+') do
      mention_agents[#mention_agents + 1] = agent
    end
    -- Unpacking a stream of objects gives each; each is packed again to publish.
    for i, frame in ipairs({ cmsgpack.unpack(ARGV[base + 21]) }) do
      mention_frames[i] = cmsgpack.pack(frame)
    end
  end
  apply_followups(q, {
    conversation = conversation, at = at,
    lost_agent = ARGV[base + 9],
    lost_by = (ARGV[base + 10] ~= '') and ARGV[base + 10] or nil,
    lost_epoch = tonumber(ARGV[base + 11]), lost_seq = tonumber(ARGV[base + 12]),
    lost_reason = (ARGV[base + 13] ~= '') and ARGV[base + 13] or nil,
    received_keys = (received_key > 0)
      and { KEYS[received_key], KEYS[received_key + 1], KEYS[received_key + 2] } or nil,
    received_id = ARGV[base + 15], received_type = ARGV[base + 16],
    received_engagement = ARGV[base + 17], received_title = ARGV[base + 18],
    job_seq = tonumber(ARGV[base + 19]), job_due = at + job_lease,
    mention_agents = mention_agents,
    mention_frames = mention_frames,
  })
  local changed, queued_since = update_inbox_entry(q, {
    conversation = conversation, seq = tonumber(ARGV[base + 1]), status = ARGV[base + 2],
    owner = ARGV[base + 3], epoch = tonumber(ARGV[base + 4]), disabled = ARGV[base + 5],
    at = at, status_changed = ARGV[base + 7] == '1',
    preview = ARGV[base + 8],
  })
  results[#results + 1] = { changed, queued_since or 0 }
end
return results
