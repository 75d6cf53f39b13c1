-- fetch: ARGV = P, mailbox, with-summary "1"|"0", then (lo, hi) pairs
-- -> flat { uid, flags, record, modseq[, summary] ... }
local m = ARGV[2]
if not mb_exists(m) then return notfound('mailbox ' .. m) end
local extra
if ARGV[3] == '1' then extra = 'sum' end
return rows(m, uids_in(K('uids', m), 4), extra)
