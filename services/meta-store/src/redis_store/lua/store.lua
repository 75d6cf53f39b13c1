-- store_flags: ARGV = P, mailbox, op (add|remove|replace), unchanged-since ("" for none),
-- n, n flags, then (lo, hi) pairs
-- -> { highestmodseq, { uid, modseq, flags ... }, { modified uid ... } }
local m, op = ARGV[2], ARGV[3]
if not mb_exists(m) then return notfound('mailbox ' .. m) end
local us = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local given = {}
for i = 1, n do given[i] = ARGV[5 + i] end

local function apply(cur)
  local nxt = {}
  if op == 'add' then
    for _, f in ipairs(cur) do nxt[#nxt + 1] = f end
    for _, f in ipairs(given) do if not has(nxt, f) then nxt[#nxt + 1] = f end end
  elseif op == 'remove' then
    for _, f in ipairs(cur) do if not has(given, f) then nxt[#nxt + 1] = f end end
  else
    nxt = given
  end
  if #nxt == #cur then
    local same = true
    for _, f in ipairs(nxt) do if not has(cur, f) then same = false break end end
    -- Unchanged: the message keeps its MODSEQ (RFC 7162 §3.2).
    if same then return nil end
  end
  return nxt
end

local uids = uids_in(K('uids', m), 6 + n)
local cur_flags = hmget_all(K('flags', m), uids)
local cur_ms = zmscore_all(K('modseq', m), uids)
local ms
local updated, modified = {}, {}
local flag_items, ms_items = {}, {}
local unseen_add, unseen_rem, deleted_add, deleted_rem = {}, {}, {}, {}
local d_unseen, d_deleted = 0, 0
local keywords = {}
for i, uid in ipairs(uids) do
  if us and tonumber(cur_ms[i]) > us then
    -- RFC 7162 §3.1.3: changed after UNCHANGEDSINCE, left alone and reported.
    modified[#modified + 1] = uid
  else
    local cur = split(cur_flags[i] or '')
    local nxt = apply(cur)
    if nxt then
      if not ms then ms = bump(m) end
      local was_seen, seen = has(cur, '\\Seen'), has(nxt, '\\Seen')
      if was_seen and not seen then
        d_unseen = d_unseen + 1
        unseen_add[#unseen_add + 1] = uid
        unseen_add[#unseen_add + 1] = uid
      elseif seen and not was_seen then
        d_unseen = d_unseen - 1
        unseen_rem[#unseen_rem + 1] = uid
      end
      local was_del, del = has(cur, '\\Deleted'), has(nxt, '\\Deleted')
      if del and not was_del then
        d_deleted = d_deleted + 1
        deleted_add[#deleted_add + 1] = uid
        deleted_add[#deleted_add + 1] = uid
      elseif was_del and not del then
        d_deleted = d_deleted - 1
        deleted_rem[#deleted_rem + 1] = uid
      end
      for _, f in ipairs(nxt) do
        if string.sub(f, 1, 1) ~= '\\' then keywords[string.lower(f)] = f end
      end
      local joined = table.concat(nxt, ' ')
      flag_items[#flag_items + 1] = uid
      flag_items[#flag_items + 1] = joined
      ms_items[#ms_items + 1] = ms
      ms_items[#ms_items + 1] = uid
      updated[#updated + 1] = uid
      updated[#updated + 1] = fmt(ms)
      updated[#updated + 1] = joined
    end
  end
end
if ms then
  bulk_write('HSET', K('flags', m), flag_items, 2)
  bulk_write('ZADD', K('modseq', m), ms_items, 2)
  bulk_write('ZADD', K('unseen', m), unseen_add, 2)
  bulk_write('ZREM', K('unseen', m), unseen_rem, 1)
  bulk_write('ZADD', K('deleted', m), deleted_add, 2)
  bulk_write('ZREM', K('deleted', m), deleted_rem, 1)
  if d_unseen ~= 0 then redis.call('HINCRBY', mbkey(m), 'unseen', d_unseen) end
  if d_deleted ~= 0 then redis.call('HINCRBY', mbkey(m), 'deleted', d_deleted) end
  for lower, f in pairs(keywords) do redis.call('HSETNX', K('kw', m), lower, f) end
  emit(m, ms, 'f')
end
publish()
return { redis.call('HGET', mbkey(m), 'highestmodseq'), updated, modified }
