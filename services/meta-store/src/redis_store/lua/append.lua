-- append: ARGV = P, now, name, n, then n times: flags, record, summary, search text (JSON,
-- queued for the full-text index)
-- -> { uidvalidity, mailbox, uid... }
local now, name, n = ARGV[2], ARGV[3], tonumber(ARGV[4])
local id = resolve(name, now)
if not id then
  publish()
  return notfound('mailbox ' .. name)
end
local out = { redis.call('HGET', mbkey(id), 'uidvalidity'), id }
if n == 0 then
  publish()
  return out
end
if not uid_room(id, n) then
  publish()
  return invalid('mailbox ' .. name .. ' has no UIDs left')
end
local bytes = 0
local flag_lists = {}
for i = 0, n - 1 do
  bytes = bytes + rec_size(ARGV[6 + i * 4])
  local flags = split(ARGV[5 + i * 4])
  if keyword_count(flags) > MAX_KEYWORDS_PER_MESSAGE then
    publish()
    return too_many_per_message()
  end
  flag_lists[#flag_lists + 1] = flags
end
local refusal = keyword_room_refusal(id, flag_lists) or quota_refusal(bytes, n)
if refusal then
  publish()
  return refusal
end
usage_add(bytes, n)
local ms = bump(id)
for i = 0, n - 1 do
  local b = 5 + i * 4
  local uid = take_uid(id)
  add_msg(id, uid, split(ARGV[b]), ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ms)
  out[#out + 1] = fmt(uid)
end
emit(id, ms, 'a')
publish()
return out
