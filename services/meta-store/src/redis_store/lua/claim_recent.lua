-- claim_recent: ARGV = P, mailbox -> { from, to }
-- The mailbox's 'recent' mark (first UID no session has claimed as \Recent, RFC 3501 §2.3.2;
-- absent means 1) moves to UIDNEXT; the caller alone gets [from, to).
local m = ARGV[2]
if not mb_exists(m) then return notfound('mailbox ' .. m) end
local v = redis.call('HMGET', mbkey(m), 'recent', 'uidnext')
local from, to = v[1] or '1', v[2]
if from ~= to then redis.call('HSET', mbkey(m), 'recent', to) end
return { from, to }
