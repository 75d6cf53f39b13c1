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
if dst ~= src and #uids > 0 then
  -- The copies bring their keywords: the destination must have room for the new ones.
  local flag_lists = {}
  for _, f in ipairs(hmget_all(K('flags', src), uids)) do flag_lists[#flag_lists + 1] = split(f) end
  local refusal = keyword_room_refusal(dst, flag_lists)
  if refusal then
    publish()
    return refusal
  end
end
if not remove and #uids > 0 then
  -- A copy adds to the account's usage; a move within it changes nothing.
  local bytes = 0
  for _, rec in ipairs(hmget_all(K('msg', src), uids)) do bytes = bytes + rec_size(rec) end
  local refusal = quota_refusal(bytes, #uids)
  if refusal then
    publish()
    return refusal
  end
  usage_add(bytes, #uids)
end
local mapping = transfer(src, uids, dst, remove)
publish()
return { redis.call('HGET', mbkey(dst), 'uidvalidity'), dst, mapping }
