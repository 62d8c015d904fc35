-- One conversation's due alerts, decided and published in one atomic step in the
-- tenant's slot (chathub_ownership::alerts; the memory twin does the same under the
-- conversation's lock): only while the tenant's queue entry says the conversation waits
-- unanswered in the cycle the node saw (epoch and since), and each occurrence of a step
-- only once (the marks). A take's queue entry and queue frame are written in their own
-- atomic step in this slot, so an alert is published wholly before them or not at all.
--
-- KEYS[1] inbox hash   KEYS[2] the tenant's alert marks hash (conversation → marks)
-- ARGV[1] publish command   ARGV[2] the agents' own channel prefix   ARGV[3] conversation
-- ARGV[4] epoch   ARGV[5] since (ms)   ARGV[6] steps in the schedule
-- then 4 arguments per due occurrence: step (0-based), occurrence, the agents whose
-- devices get it (comma-separated, '' none), the frame (packed)
-- Marks: 'epoch:since:k0,k1,…' — per step the latest occurrence sent, -1 for none.
-- Returns the steps sent.

local blob = redis.call('HGET', KEYS[1], ARGV[3])
if not blob then return {} end
local entry = cmsgpack.unpack(blob)
local epoch, since, steps = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if entry.status ~= 'unanswered' or entry.epoch ~= epoch or entry.since ~= since then
  return {}
end

local sent = {}
for i = 1, steps do sent[i] = -1 end
local old = redis.call('HGET', KEYS[2], ARGV[3])
if old then
  local e, s, rest = string.match(old, '^(%d+):(%d+):(.*)$')
  if tonumber(e) == epoch and tonumber(s) == since then
    local i = 1
    for k in string.gmatch(rest, '[^,]+') do
      if i <= steps then sent[i] = tonumber(k) end
      i = i + 1
    end
  end
end

local fired = {}
for base = 7, #ARGV, 4 do
  local step, k = tonumber(ARGV[base]), tonumber(ARGV[base + 1])
  if step < steps and sent[step + 1] < k then
    sent[step + 1] = k
    for agent in string.gmatch(ARGV[base + 2], '[^,]+') do
      redis.call(ARGV[1], ARGV[2] .. agent, ARGV[base + 3])
    end
    fired[#fired + 1] = step
  end
end
if #fired > 0 then
  redis.call('HSET', KEYS[2], ARGV[3],
    string.format('%d:%d:%s', epoch, since, table.concat(sent, ',')))
end
return fired
