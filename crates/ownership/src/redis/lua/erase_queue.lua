-- The second step of an erasure on a Redis Cluster: the conversation out of its tenant's
-- queue (`erase_queue_entry`, from `erase_entry.lua`, which runs before this). Idempotent:
-- the sweepers redo it from the erasure's pending mark if the node that erased dies.
--
-- KEYS[1] inbox hash  KEYS[2..4] unanswered / active / finished zsets  KEYS[5] inbox
-- event stream  KEYS[6] the tenant's webhook job set (all under the tenant's hash tag)
-- ARGV[1] publish command  ARGV[2] agents channel  ARGV[3] conversation  ARGV[4] its seq
-- ARGV[5] its epoch  ARGV[6] time, ms  ARGV[7] the packed `erased` frame
-- Returns { queue entries removed, inbox stream entries removed, webhook jobs removed }.
return erase_queue_entry(
  { KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], nil, nil, KEYS[6] },
  { conversation = ARGV[3], seq = tonumber(ARGV[4]), epoch = tonumber(ARGV[5]),
    at = tonumber(ARGV[6]), frame = ARGV[7] })
