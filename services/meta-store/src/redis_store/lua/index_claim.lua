-- index_claim: ARGV = P, token, lease milliseconds, most entries, most removals
-- The indexer's first step for one account (see index_forget in the prelude): takes the lease
-- (or finds it held by another indexer: { 0 }) and returns the work:
-- { 1, generation, { legacy mailbox ... }, { mailbox, uid, queued text, record ... } (the
-- message record only for copy references, else ''), { removal ... } }
-- Legacy mailboxes still hold search postings of an older release (index_migrate removes
-- them). A removal ("<m> <uid>" or "<m> *") whose target a queued copy still refers to waits:
-- the copy must be indexed from it first.
local token, lease_ms = ARGV[2], ARGV[3]
local most, most_removals = tonumber(ARGV[4]), tonumber(ARGV[5])
local holder = redis.call('GET', IXLEASE)
if holder and holder ~= token then return { 0 } end
redis.call('SET', IXLEASE, token, 'PX', lease_ms)
local legacy, entries = {}, {}
local taken = 0
for _, m in ipairs(redis.call('HVALS', P .. 'mailboxes')) do
  if redis.call('HEXISTS', mbkey(m), 'grams') == 1 or redis.call('EXISTS', K('gl', m)) == 1 then
    legacy[#legacy + 1] = m
  end
  if taken < most and redis.call('EXISTS', K('idx', m)) == 1 then
    -- HSCAN from cursor 0: the entries taken are deleted at commit, so the next claim's scan
    -- finds the rest. COUNT is a hint; the loop keeps to `most`.
    local got = redis.call('HSCAN', K('idx', m), 0, 'COUNT', most - taken)[2]
    for i = 1, #got, 2 do
      if taken >= most then break end
      -- A copy's body, should its source no longer be indexed (see BodyText).
      local rec = ''
      if string.sub(got[i + 1], 1, 1) == '@' then
        rec = redis.call('HGET', K('msg', m), got[i]) or ''
      end
      entries[#entries + 1] = m
      entries[#entries + 1] = got[i]
      entries[#entries + 1] = got[i + 1]
      entries[#entries + 1] = rec
      taken = taken + 1
    end
  end
end
-- Looks a little further than `most_removals`, so removals that wait do not hide the others.
local removals = {}
for _, r in ipairs(redis.call('LRANGE', IXDEL, 0, most_removals * 4 - 1)) do
  if #removals >= most_removals then break end
  if not redis.call('HGET', IXREFS, r) then removals[#removals + 1] = r end
end
-- Nothing to do: the lease is not kept (it would make expunges log removals needlessly).
if #entries == 0 and #removals == 0 and #legacy == 0 then redis.call('DEL', IXLEASE) end
return { 1, redis.call('HGET', P .. 'ix', 'gen') or '0', legacy, entries, removals }
