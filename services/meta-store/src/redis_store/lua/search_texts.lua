-- search_texts: ARGV = P, mailbox, text-budget, uid...: the queued search texts a SEARCH's
-- scan left out for its budget (see search.lua): { generation, texts }, `texts` one entry per
-- uid read, in order, as many as fit in the budget (at least one); false for a uid no longer
-- queued, which is in the index of `generation` unless it was expunged meanwhile.
local m = ARGV[2]
if not mb_exists(m) then return notfound('mailbox ' .. m) end
local uids = {}
for i = 4, #ARGV do uids[#uids + 1] = ARGV[i] end
return { redis.call('HGET', P .. 'ix', 'gen') or '0', queued_texts(m, uids, tonumber(ARGV[3])) }
