-- changes_since: ARGV = P, mailbox, since
-- -> { 0 } when the mailbox is gone, else
--    { 1, highestmodseq, uidnext, exists, { uid, flags, record, modseq ... }, { vanished ... } }
local m, since = ARGV[2], ARGV[3]
if not mb_exists(m) then return { 0 } end
local info = redis.call('HMGET', mbkey(m), 'highestmodseq', 'uidnext', 'exists')
local changed = redis.call('ZRANGEBYSCORE', K('modseq', m), '(' .. since, '+inf')
local vanished = redis.call('ZRANGEBYSCORE', K('expunged', m), '(' .. since, '+inf')
return { 1, info[1], info[2], info[3], rows(m, changed, nil), vanished }
