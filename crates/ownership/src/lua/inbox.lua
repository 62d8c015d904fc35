-- The second step on a Redis Cluster (the tenant's queue lives in another slot than the
-- conversation): the queue entries of one or more conversations of one tenant, in order
-- (a node batches the updates it has pending for a tenant into one call). Runs after
-- `inbox_entry.lua`, which defines `update_inbox_entry`.
--
-- KEYS[1] inbox hash  KEYS[2] unanswered zset  KEYS[3] active zset  KEYS[4] finished zset
-- KEYS[5] inbox event stream   (all under the tenant's hash tag)
-- ARGV[1] publish command   ARGV[2] agents channel   ARGV[3] inbox stream max length
-- then 9 arguments per update, in order of application:
--   conversation, seq, status, owner ('' for none), epoch, disabled ('1'/'0'),
--   time of the change (ms), status changed ('1'/'0': also publish a queue frame),
--   preview ('' to keep the old one)
-- Returns how many entries changed (an update that is not newer than the entry is skipped).

local inbox_key, unanswered_key, active_key, finished_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local inbox_events_key = KEYS[5]
local publish_command, agents_channel, inbox_max_len = ARGV[1], ARGV[2], ARGV[3]
-- Each update is read from its 9 arguments by name, starting at `base`.
local FIRST_UPDATE, PER_UPDATE = 4, 9

local q = { inbox_key, unanswered_key, active_key, finished_key, inbox_events_key,
  publish_command, agents_channel, inbox_max_len }
local changed = 0
for base = FIRST_UPDATE, #ARGV, PER_UPDATE do
  changed = changed + update_inbox_entry(q, {
    conversation = ARGV[base], seq = tonumber(ARGV[base + 1]), status = ARGV[base + 2],
    owner = ARGV[base + 3], epoch = tonumber(ARGV[base + 4]), disabled = ARGV[base + 5],
    at = tonumber(ARGV[base + 6]), status_changed = ARGV[base + 7] == '1',
    preview = ARGV[base + 8],
  })
end
return changed
