-- delete_mailbox: ARGV = P, name (never INBOX; the Rust side refuses it)
local name = ARGV[2]
local id = redis.call('HGET', P .. 'mailboxes', name)
if not id then return notfound('mailbox ' .. name) end
local v = redis.call('HMGET', mbkey(id), 'highestmodseq', 'exists', 'size')
usage_init()
usage_add(-(tonumber(v[3]) or 0), -(tonumber(v[2]) or 0))
local ms = v[1]
drop_mb(id, name)
emit(id, ms, 'l')
publish()
return 1
