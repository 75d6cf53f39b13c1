-- copy_messages: ARGV = P, source, now, destination name, remove "1"|"0", then (lo, hi) pairs
-- -> { uidvalidity, destination, { src uid, dst uid ... } }
local src, now, name, remove = ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
if not mb_exists(src) then return notfound('mailbox ' .. src) end
local dst = resolve(name, now)
if not dst then
  publish()
  return notfound('mailbox ' .. name)
end
local uids = uids_in(K('uids', src), 6)
if not uid_room(dst, #uids) then
  publish()
  return invalid('mailbox ' .. name .. ' has no UIDs left')
end
local mapping = transfer(src, uids, dst, remove)
publish()
return { redis.call('HGET', mbkey(dst), 'uidvalidity'), dst, mapping }
