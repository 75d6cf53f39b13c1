-- select: ARGV = P, now, name, most messages whose flags are sent
-- -> { info, uids, first unseen or false, keywords, flag lists, list per message,
--      modseq per message }
-- Each message's flags and MODSEQ are read in this script, so they are exactly the state at the
-- info's HIGHESTMODSEQ. Messages share few distinct flag strings: each is sent once and every
-- message names it by index (from 0), as its MODSEQ by an integer (MODSEQs stay below 2^53,
-- so the score converts exactly).
local id = resolve(ARGV[3], ARGV[2])
publish()
if not id then return notfound('mailbox ' .. ARGV[3]) end
local first = redis.call('ZRANGE', K('unseen', id), 0, 0)
local uids = redis.call('ZRANGE', K('uids', id), 0, -1)
if #uids > tonumber(ARGV[4]) then
  -- A very large mailbox: the flags would hold the shard for too long in one script; the
  -- session reads them when a command needs them.
  return { mb_info(id), uids, first[1] or false, redis.call('HVALS', K('kw', id)), {}, {}, {} }
end
local raw = hmget_all(K('flags', id), uids)
local mss = zmscore_all(K('modseq', id), uids)
local lists, list_of, index = {}, {}, {}
for i = 1, #uids do
  -- As fetch's rows(): a missing entry reads as no flags, MODSEQ 0.
  local f = raw[i] or ''
  local l = index[f]
  if not l then
    l = #lists
    lists[l + 1] = f
    index[f] = l
  end
  list_of[i] = l
  mss[i] = tonumber(mss[i]) or 0
end
return { mb_info(id), uids, first[1] or false, redis.call('HVALS', K('kw', id)), lists, list_of,
  mss }
