-- changes_since: ARGV = P, mailbox, since, now
-- -> { 0 } when the mailbox is gone (or was just moved to a new UIDVALIDITY), else
--    { 1, highestmodseq, uidnext, exists, { uid, flags, record, modseq ... }, { vanished ... },
--      trimmed } where trimmed is 1 when the expunge log no longer reaches back to `since`
local m, since = ARGV[2], ARGV[3]
if not mb_exists(m) then return { 0 } end
local info = redis.call('HMGET', mbkey(m), 'highestmodseq', 'uidnext', 'exists')
-- A MODSEQ above HIGHESTMODSEQ was handed out by writes Redis has lost since (HIGHESTMODSEQ
-- only grows): the caller's view belongs to a past this mailbox no longer has. Move it to a
-- new UIDVALIDITY (its UIDs may be handed out again) and end the caller's view.
if tonumber(since) > tonumber(info[1]) then
  revalidate(m, ARGV[4], 0, 0)
  publish()
  return { 0 }
end
local changed = redis.call('ZRANGEBYSCORE', K('modseq', m), '(' .. since, '+inf')
local vanished = redis.call('ZRANGEBYSCORE', K('expunged', m), '(' .. since, '+inf')
-- Entries above 'vanished_floor' were never dropped: exact for any since at or above it.
local floor = tonumber(redis.call('HGET', mbkey(m), 'vanished_floor') or '0')
local trimmed = 0
if tonumber(since) < floor then trimmed = 1 end
return { 1, info[1], info[2], info[3], rows(m, changed, nil), vanished, trimmed }
