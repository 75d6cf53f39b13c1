-- rename_mailbox: ARGV = P, now, from, to (validated by the Rust side: to is not from nor
-- one of its inferiors)
local now, from, to = ARGV[2], ARGV[3], ARGV[4]
local src = resolve(from, now)
if not src then
  publish()
  return notfound('mailbox ' .. from)
end
if resolve(to, now) then
  publish()
  return exists_err('mailbox ' .. to)
end
-- Moved mailboxes keep their number; the missing superiors of `to` (and, for INBOX, the new
-- mailbox that takes its messages) are what the account gains.
local refusal = mailbox_room_refusal(to, from == 'INBOX' and 1 or 0)
if refusal then
  publish()
  return refusal
end
if from == 'INBOX' then
  -- RFC 3501 §6.3.5: INBOX's messages move to a new mailbox, INBOX stays (empty) and its
  -- inferiors are untouched.
  create_superiors(to, now)
  local dst = create_mb(to, '', now)
  transfer(src, redis.call('ZRANGE', K('uids', src), 0, -1), dst, true)
  publish()
  return 1
end
local all = redis.call('HGETALL', P .. 'mailboxes')
local prefix = from .. '/'
local moving = {}
for i = 1, #all, 2 do
  local n = all[i]
  if n == from or string.sub(n, 1, #prefix) == prefix then
    moving[#moving + 1] = { n, all[i + 1], to .. string.sub(n, #from + 1) }
  end
end
for _, mv in ipairs(moving) do
  if redis.call('HEXISTS', P .. 'mailboxes', mv[3]) == 1 then
    publish()
    return exists_err('mailbox ' .. mv[3])
  end
end
for _, mv in ipairs(moving) do
  redis.call('HDEL', P .. 'mailboxes', mv[1])
  redis.call('HSET', P .. 'mailboxes', mv[3], mv[2])
  redis.call('HSET', mbkey(mv[2]), 'name', mv[3])
  emit(mv[2], redis.call('HGET', mbkey(mv[2]), 'highestmodseq'), 'l')
end
create_superiors(to, now)
publish()
return 1
