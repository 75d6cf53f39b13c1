-- claim_recent: ARGV = P, mailbox, up_to -> { from, to }
-- The mailbox's 'recent' mark (first UID no session has claimed as \Recent, RFC 3501 §2.3.2;
-- absent means 1) moves to max(mark, min(up_to, UIDNEXT)); the caller alone gets [from, to).
-- The bound keeps a session from claiming messages it is not announcing.
local m = ARGV[2]
local up_to = tonumber(ARGV[3])
if not up_to then return invalid('claim bound ' .. ARGV[3]) end
if not mb_exists(m) then return notfound('mailbox ' .. m) end
local v = redis.call('HMGET', mbkey(m), 'recent', 'uidnext')
local from = tonumber(v[1] or '1')
local to = math.max(from, math.min(up_to, tonumber(v[2])))
if to ~= from then redis.call('HSET', mbkey(m), 'recent', fmt(to)) end
return { fmt(from), fmt(to) }
