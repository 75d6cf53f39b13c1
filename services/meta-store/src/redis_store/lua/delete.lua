-- delete_mailbox: ARGV = P, name (never INBOX; the Rust side refuses it)
local name = ARGV[2]
local id = redis.call('HGET', P .. 'mailboxes', name)
if not id then return notfound('mailbox ' .. name) end
local ms = redis.call('HGET', mbkey(id), 'highestmodseq')
drop_mb(id, name)
emit(id, ms, 'l')
publish()
return 1
