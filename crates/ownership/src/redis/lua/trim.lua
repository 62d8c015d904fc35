-- History trimming by age, shared by `apply.lua` (without an archive) and `settle.lua`
-- (with one). Prepended to both.
--
-- Drops a few (at most 16: amortised over the calls) of the oldest entries of the
-- history stream `history_key` older than `cutoff` (ms), stopping at the first younger
-- one, and never one past seq `up_to` (nil: no bound).
local function trim_older_than(history_key, cutoff, up_to)
  local oldest = redis.call('XRANGE', history_key, '-', '+', 'COUNT', 16)
  for _, entry in ipairs(oldest) do
    local entry_seq = tonumber(string.match(entry[1], '^(%d+)'))
    local fields, t = entry[2], nil
    for i = 1, #fields, 2 do
      if fields[i] == 't' then t = tonumber(fields[i + 1]) end
    end
    if t and t < cutoff and (up_to == nil or (entry_seq and entry_seq <= up_to)) then
      redis.call('XDEL', history_key, entry[1])
    else
      break
    end
  end
end
