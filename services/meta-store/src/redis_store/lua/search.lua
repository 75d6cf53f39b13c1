-- search: ARGV = P, mailbox, mode, want-flags, want-record, want-modseq, want-index, then
-- trigrams (hex) every match contains: the scan then reads only the UIDs on all their postings
-- (when the mailbox has complete postings, see add_grams).
-- mode "unseen" / "deleted": just the UIDs of that flag index (SEARCH UNSEEN, DELETED);
-- mode "scan": { uids, flags|false, records|false, modseqs|false, indexes|false }, only the
-- columns the search key needs.
local m, mode = ARGV[2], ARGV[3]
if not mb_exists(m) then return notfound('mailbox ' .. m) end
if mode == 'unseen' or mode == 'deleted' then
  return { redis.call('ZRANGE', K(mode, m), 0, -1) }
end
local uids
if #ARGV >= 8 and redis.call('HGET', mbkey(m), 'grams') == '1' then
  local keys = {}
  -- Any subset of the required grams narrows soundly; CHUNK bounds unpack()'s stack use.
  for i = 8, math.min(#ARGV, 8 + CHUNK - 1) do keys[#keys + 1] = gram_key(m, ARGV[i]) end
  uids = redis.call('SINTER', unpack(keys))
  -- Messages too large to post (see add_grams) are candidates of every text search.
  local posted = {}
  for _, u in ipairs(uids) do posted[u] = true end
  for _, u in ipairs(redis.call('SMEMBERS', K('ug', m))) do
    if not posted[u] then uids[#uids + 1] = u end
  end
  table.sort(uids, function(a, b) return tonumber(a) < tonumber(b) end)
else
  uids = redis.call('ZRANGE', K('uids', m), 0, -1)
end
local function col(want, f)
  if want == '1' then return f() end
  return false
end
return {
  uids,
  col(ARGV[4], function() return hmget_all(K('flags', m), uids) end),
  col(ARGV[5], function() return hmget_all(K('msg', m), uids) end),
  col(ARGV[6], function() return zmscore_all(K('modseq', m), uids) end),
  col(ARGV[7], function() return hmget_all(K('idx', m), uids) end),
}
