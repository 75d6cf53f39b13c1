-- revalidate: ARGV = P, now, then for each mailbox meta has seen: mailbox, uidvalidity seen,
-- uidnext seen, highestmodseq seen
-- -> { mailbox, uidvalidity before, uidvalidity now ... } for every mailbox that exists
-- A mailbox whose UIDVALIDITY is the one seen but whose UIDNEXT or HIGHESTMODSEQ is below
-- what was seen lost writes (both only grow); one whose UIDVALIDITY is below the one seen lost
-- an earlier move. Either is moved to a new UIDVALIDITY (see `revalidate` in the prelude).
local now = ARGV[2]
local out = {}
for i = 3, #ARGV - 3, 4 do
  local m, seen_v, seen_next, seen_ms = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]),
    tonumber(ARGV[i + 3])
  if mb_exists(m) then
    local cur = redis.call('HMGET', mbkey(m), 'uidvalidity', 'uidnext', 'highestmodseq')
    local v, nx, ms = tonumber(cur[1]), tonumber(cur[2]), tonumber(cur[3])
    local new = v
    -- A seen HIGHESTMODSEQ of 0 is unknown.
    if v < seen_v or (v == seen_v and (nx < seen_next or (seen_ms > 0 and ms < seen_ms))) then
      new = revalidate(m, now, seen_v + 1, seen_next)
    end
    out[#out + 1] = m
    out[#out + 1] = cur[1]
    out[#out + 1] = fmt(new)
  end
end
publish()
return out
