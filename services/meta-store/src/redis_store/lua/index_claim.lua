-- index_claim: ARGV = P, token, lease milliseconds, most entries, most removals, most bytes
-- The indexer's first step for one account (see index_forget in the prelude): takes the lease
-- (or finds it held by another indexer: { 0 }) and returns the work:
-- { 1, generation, { legacy mailbox ... }, { mailbox, uid, queued text, record ... } (the
-- message record only for copy references, else ''), { removal ... } }
-- Legacy mailboxes still hold search postings of an older release (index_migrate removes
-- them). A removal ("<m> <uid>" or "<m> *") whose target a queued copy still refers to waits:
-- the copy must be indexed from it first.
local token, lease_ms = ARGV[2], ARGV[3]
local most, most_removals, most_bytes = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local holder = redis.call('GET', IXLEASE)
if holder and holder ~= token then return { 0 } end
redis.call('SET', IXLEASE, token, 'PX', lease_ms)
local legacy, entries = {}, {}
local taken, bytes = 0, 0
for _, m in ipairs(redis.call('HVALS', P .. 'mailboxes')) do
  if redis.call('HEXISTS', mbkey(m), 'grams') == 1 or redis.call('EXISTS', K('gl', m)) == 1 then
    legacy[#legacy + 1] = m
  end
  if taken < most and bytes < most_bytes and redis.call('EXISTS', K('idx', m)) == 1 then
    -- Field names only (HRANDFIELD), then each text by itself while the reply stays within
    -- `most_bytes` (at least one entry, however large): a tenant's megabytes of header text
    -- must not make one claim hold Redis. The entries taken leave the queue at commit, so the
    -- next claim draws from the rest.
    for _, uid in ipairs(redis.call('HRANDFIELD', K('idx', m), most - taken)) do
      local len = redis.call('HSTRLEN', K('idx', m), uid)
      if taken >= most or (taken > 0 and bytes + len > most_bytes) then break end
      local v = redis.call('HGET', K('idx', m), uid)
      -- A copy's body, should its source no longer be indexed (see BodyText).
      local rec = ''
      if string.sub(v, 1, 1) == '@' then rec = redis.call('HGET', K('msg', m), uid) or '' end
      entries[#entries + 1] = m
      entries[#entries + 1] = uid
      entries[#entries + 1] = v
      entries[#entries + 1] = rec
      taken = taken + 1
      bytes = bytes + len
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
