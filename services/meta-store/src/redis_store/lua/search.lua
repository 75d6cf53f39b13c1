-- search: ARGV = P, mailbox, mode, want-flags, want-record, want-modseq, want-text, text-budget
-- mode "unseen" / "deleted": just the UIDs of that flag index (SEARCH UNSEEN, DELETED);
-- mode "scan": { uids, flags|false, records|false, modseqs|false, queued|false, generation }:
-- only the columns the search key needs; `queued` is the flat (uid, search text) list of the
-- mailbox's messages still queued for the full-text index, `generation` the index generation
-- holding every other message (see index_forget in the prelude), read in this same step. Texts
-- beyond text-budget bytes come as false: the caller reads them with search_texts.
local m, mode = ARGV[2], ARGV[3]
if not mb_exists(m) then return notfound('mailbox ' .. m) end
if mode == 'unseen' or mode == 'deleted' then
  return { redis.call('ZRANGE', K(mode, m), 0, -1) }
end
local uids = redis.call('ZRANGE', K('uids', m), 0, -1)
local function col(want, f)
  if want == '1' then return f() end
  return false
end
local function queued()
  local queued_uids = redis.call('HKEYS', K('idx', m))
  local texts = queued_texts(m, queued_uids, tonumber(ARGV[8]))
  local flat = {}
  for i, uid in ipairs(queued_uids) do
    flat[2 * i - 1] = uid
    flat[2 * i] = texts[i] or false
  end
  return flat
end
return {
  uids,
  col(ARGV[4], function() return hmget_all(K('flags', m), uids) end),
  col(ARGV[5], function() return hmget_all(K('msg', m), uids) end),
  col(ARGV[6], function() return zmscore_all(K('modseq', m), uids) end),
  col(ARGV[7], queued),
  redis.call('HGET', P .. 'ix', 'gen') or '0',
}
