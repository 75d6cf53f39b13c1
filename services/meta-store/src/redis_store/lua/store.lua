-- store_flags: ARGV = P, mailbox, op (add|remove|replace), unchanged-since ("" for none),
-- batch, mode ("1": check only; "2": write only if the whole set fits in this batch, else
-- check only; "0": write), n, n flags, then (lo, hi) pairs
-- -> { highestmodseq, { uid, modseq, flags ... }, { modified uid ... }, last uid or 0 }
--
-- One call handles at most `batch` messages of the set, the first ones; the last value is the
-- last UID it handled when more remain (the caller goes on above it), so that no call holds
-- Redis for longer than a batch takes whatever the set and the mailbox size. A dry call checks
-- the batch against the keyword limits and writes nothing.
--
-- Everything is worked out and checked before the first write (a script is not rolled back on
-- error), and the work is linear in (messages × flags per message): `given` is lower-cased once
-- into a set, each message's flags once into another.
local m, op = ARGV[2], ARGV[3]
if not mb_exists(m) then return notfound('mailbox ' .. m) end
local us = tonumber(ARGV[4])
local batch = tonumber(ARGV[5])
local n = tonumber(ARGV[7])
local given = {}
for i = 1, n do given[i] = ARGV[7 + i] end
local grows = op ~= 'remove'
if grows and keyword_count(given) > MAX_KEYWORDS_PER_MESSAGE then
  return too_many_per_message()
end
local given_set = lower_set(given)

-- The flags after the operation, or nil when they do not change (the message then keeps its
-- MODSEQ, RFC 7162 §3.2).
local function apply(cur)
  local cur_set = lower_set(cur)
  local nxt = {}
  if op == 'add' then
    for _, f in ipairs(cur) do nxt[#nxt + 1] = f end
    for _, f in ipairs(given) do
      if not cur_set[string.lower(f)] then nxt[#nxt + 1] = f end
    end
  elseif op == 'remove' then
    for _, f in ipairs(cur) do
      if not given_set[string.lower(f)] then nxt[#nxt + 1] = f end
    end
  else
    nxt = given
  end
  if #nxt == #cur then
    local same = true
    for _, f in ipairs(nxt) do
      if not cur_set[string.lower(f)] then
        same = false
        break
      end
    end
    if same then return nil end
  end
  return nxt
end

local uids, more = first_uids_in(K('uids', m), 8 + n, batch)
local cur_flags = hmget_all(K('flags', m), uids)
local cur_ms = zmscore_all(K('modseq', m), uids)
local changed, modified = {}, {}
local unseen_add, unseen_rem, deleted_add, deleted_rem = {}, {}, {}, {}
local d_unseen, d_deleted = 0, 0
-- The flag text this call has worked through: a batch also ends when it passes
-- BATCH_FLAG_BYTES, since lower-casing and comparing flags is where the time goes (about a
-- microsecond per long keyword), and 64 long keywords per message would otherwise make a batch
-- of `batch` messages take tens of milliseconds.
local BATCH_FLAG_BYTES = 65536
local given_bytes = 0
for _, f in ipairs(given) do given_bytes = given_bytes + #f + 1 end
local work = 0
local done = #uids
for i, uid in ipairs(uids) do
  work = work + #(cur_flags[i] or '') + given_bytes
  if work > BATCH_FLAG_BYTES and i > 1 then
    -- This message starts the next batch.
    done = i - 1
    more = true
    break
  end
  if us and tonumber(cur_ms[i]) > us then
    -- RFC 7162 §3.1.3: changed after UNCHANGEDSINCE, left alone and reported.
    modified[#modified + 1] = uid
  else
    local cur = split(cur_flags[i] or '')
    local nxt = apply(cur)
    if nxt then
      if grows then
        local kw = keyword_count(nxt)
        if kw > MAX_KEYWORDS_PER_MESSAGE and kw > keyword_count(cur) then
          return too_many_per_message()
        end
      end
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
      changed[#changed + 1] = { uid, table.concat(nxt, ' ') }
    end
  end
end
local last = 0
if more then last = uids[done] end
local dry = ARGV[6] == '1' or (ARGV[6] == '2' and more)
local updated = {}
if #changed > 0 then
  -- Every changed message now holds all of `given` (add and replace), so these are the only
  -- keywords the mailbox can learn.
  if grows then
    local refusal = keyword_room_refusal(m, { given })
    if refusal then return refusal end
  end
  if dry then return { '0', {}, {}, last } end
  local ms = bump(m)
  local flag_items, ms_items = {}, {}
  for _, c in ipairs(changed) do
    flag_items[#flag_items + 1] = c[1]
    flag_items[#flag_items + 1] = c[2]
    ms_items[#ms_items + 1] = ms
    ms_items[#ms_items + 1] = c[1]
    updated[#updated + 1] = c[1]
    updated[#updated + 1] = fmt(ms)
    updated[#updated + 1] = c[2]
  end
  bulk_write('HSET', K('flags', m), flag_items, 2)
  bulk_write('ZADD', K('modseq', m), ms_items, 2)
  bulk_write('ZADD', K('unseen', m), unseen_add, 2)
  bulk_write('ZREM', K('unseen', m), unseen_rem, 1)
  bulk_write('ZADD', K('deleted', m), deleted_add, 2)
  bulk_write('ZREM', K('deleted', m), deleted_rem, 1)
  if d_unseen ~= 0 then redis.call('HINCRBY', mbkey(m), 'unseen', d_unseen) end
  if d_deleted ~= 0 then redis.call('HINCRBY', mbkey(m), 'deleted', d_deleted) end
  if grows then note_keywords(m, given) end
  emit(m, ms, 'f')
end
publish()
return { redis.call('HGET', mbkey(m), 'highestmodseq'), updated, modified, last }
