-- Shared by every Yubin meta script (prepended by the Rust side).
--
-- ARGV[1] is the user's key prefix "{u:<id>}:"; KEYS[1] is "{u:<id>}:mailboxes", which routes
-- the script to the user's hash slot. Every other key the script touches is built from the
-- prefix and so lies in the same slot (one user's operation never spans two slots).
--
-- Redis does not roll a script back on error, so every script validates first and only then
-- writes; errors are replied as "YNOTFOUND ...", "YEXISTS ...", "YINVALID ...", "YOVERQUOTA ...",
-- "YLIMIT ...".
--
-- MAX_KEYWORDS_PER_MESSAGE, MAX_KEYWORDS_PER_MAILBOX, MAX_MAILBOXES and MAX_METADATA_BYTES are
-- defined by the Rust side ahead of this prelude (StoreLimits). A script that has written cannot be stopped with
-- SCRIPT KILL, so every loop here is linear in what the command names and bounded by them.

local P = ARGV[1]
local CHANNEL = 'ev:' .. string.sub(P, 1, #P - 1)
local EVENTS = {}
local MAX_UID = 4294967295
local MB_FIELDS = { 'name', 'uidvalidity', 'uidnext', 'highestmodseq', 'exists', 'unseen',
  'deleted', 'size', 'specialuse' }

local function fmt(n) return string.format('%d', n) end
local function K(what, m) return P .. what .. ':' .. m end
local function mbkey(m) return P .. 'mb:' .. m end

local function notfound(what) return redis.error_reply('YNOTFOUND ' .. what) end
local function exists_err(what) return redis.error_reply('YEXISTS ' .. what) end
local function invalid(what) return redis.error_reply('YINVALID ' .. what) end
local function overquota(what) return redis.error_reply('YOVERQUOTA ' .. what) end
local function limit(what) return redis.error_reply('YLIMIT ' .. what) end

-- Change hints, published once the script's writes are done (kinds: a=appended, f=flags,
-- e=expunged, l=mailbox list, r=account revoked: disabled, deleted or its password changed). PUBLISH failing must never fail the write: hints only.
-- PUBLISH_CMD is defined by the Rust side ahead of this prelude: 'PUBLISH', or 'SPUBLISH' on a
-- cluster (CHANNEL carries the user's hash tag, so it hashes to this script's slot).
local function emit(m, ms, kind)
  EVENTS[#EVENTS + 1] = fmt(tonumber(m)) .. ' ' .. fmt(tonumber(ms)) .. ' ' .. kind
end
-- Each hint carries the publish time (TIME: seconds, microseconds) for the notification-lag
-- metric. TIME is called after the script's writes, which every Redis version allows.
local function publish()
  if #EVENTS == 0 then return end
  local t = redis.call('TIME')
  local at = ' ' .. t[1] .. string.format('%06d', tonumber(t[2]))
  for _, e in ipairs(EVENTS) do redis.pcall(PUBLISH_CMD, CHANNEL, e .. at) end
end

local function split(s)
  local t = {}
  if s then for w in string.gmatch(s, '%S+') do t[#t + 1] = w end end
  return t
end

-- Flags compare case-insensitively (RFC 3501 §2.3.2); a message keeps its first spelling.
-- `has` scans one (bounded) flag list for one flag; comparing two lists goes through
-- `lower_set`, which lower-cases each element once, never through `has` in a loop (that made
-- a STORE of 12 000 keywords quadratic).
local BACKSLASH = 92
local function has(list, f)
  local lf = string.lower(f)
  -- A system flag (`\Seen`) is never spelled like a keyword, so only the list's system flags
  -- are lower-cased and compared: a message with 64 long keywords costs no more than one
  -- without.
  local system = string.byte(f, 1) == BACKSLASH
  for _, x in ipairs(list) do
    if (not system or string.byte(x, 1) == BACKSLASH) and string.lower(x) == lf then
      return true
    end
  end
  return false
end

local function lower_set(list)
  local s = {}
  for _, f in ipairs(list) do s[string.lower(f)] = true end
  return s
end

local function is_keyword(f) return string.byte(f, 1) ~= BACKSLASH end

local function keyword_count(list)
  local n = 0
  for _, f in ipairs(list) do if is_keyword(f) then n = n + 1 end end
  return n
end

local function too_many_per_message()
  return limit('more than ' .. fmt(MAX_KEYWORDS_PER_MESSAGE) .. ' keywords on one message')
end

-- A refusal when the keywords of the flag lists `lists` would take mailbox m past
-- MAX_KEYWORDS_PER_MAILBOX distinct keywords, else nil. Only growth is refused, so a mailbox
-- above a lowered limit keeps working with what it knows. Stops at the first keyword too many.
local function keyword_room_refusal(m, lists)
  local room = MAX_KEYWORDS_PER_MAILBOX - redis.call('HLEN', K('kw', m))
  local checked = {}
  for _, list in ipairs(lists) do
    for _, f in ipairs(list) do
      local lf = string.lower(f)
      if is_keyword(f) and not checked[lf] then
        checked[lf] = true
        if redis.call('HEXISTS', K('kw', m), lf) == 0 then
          room = room - 1
          if room < 0 then
            return limit('more than ' .. fmt(MAX_KEYWORDS_PER_MAILBOX) ..
              ' keywords in one mailbox')
          end
        end
      end
    end
  end
  return nil
end

-- A refusal when creating the missing superiors of `name` plus `extra` mailboxes would take
-- the account past MAX_MAILBOXES, else nil.
local function mailbox_room_refusal(name, extra)
  local added, i = extra, 0
  while true do
    i = string.find(name, '/', i + 1, true)
    if not i then break end
    if redis.call('HEXISTS', P .. 'mailboxes', string.sub(name, 1, i - 1)) == 0 then
      added = added + 1
    end
  end
  if added > 0 and redis.call('HLEN', P .. 'mailboxes') + added > MAX_MAILBOXES then
    return limit('more than ' .. fmt(MAX_MAILBOXES) .. ' mailboxes in one account')
  end
  return nil
end

-- "<unix-seconds> <tz-minutes> <size> <blob key>"
local function rec_size(rec)
  local _, _, sz = string.match(rec or '', '^(%S+) (%S+) (%S+) ')
  return tonumber(sz) or 0
end

local function mb_exists(m) return redis.call('EXISTS', mbkey(m)) == 1 end

-- The status fields, then the number of messages no session has claimed as \Recent (UIDs at
-- or above the 'recent' mark, absent = 1).
local function mb_info(m)
  local v = redis.call('HMGET', mbkey(m), unpack(MB_FIELDS))
  table.insert(v, 1, fmt(tonumber(m)))
  local mark = redis.call('HGET', mbkey(m), 'recent') or '1'
  v[#v + 1] = redis.call('ZCOUNT', K('uids', m), mark, '+inf')
  return v
end

local function bump(m) return redis.call('HINCRBY', mbkey(m), 'highestmodseq', 1) end
local function take_uid(m) return redis.call('HINCRBY', mbkey(m), 'uidnext', 1) - 1 end

-- UIDVALIDITY: max(now, previous + 1) per user, so a mailbox recreated under an old name never
-- gets an old value back (RFC 3501 §2.3.1.1).
local function next_uidvalidity(now)
  local last = tonumber(redis.call('HGET', P .. 'seq', 'uidvalidity') or '0')
  local v = math.max(tonumber(now), last + 1)
  redis.call('HSET', P .. 'seq', 'uidvalidity', fmt(v))
  return v
end

local function create_mb(name, special, now)
  local id = redis.call('HINCRBY', P .. 'seq', 'mailbox', 1)
  local v = next_uidvalidity(now)
  redis.call('HSET', mbkey(id), 'name', name, 'uidvalidity', fmt(v), 'uidnext', '1',
    'highestmodseq', '1', 'exists', '0', 'unseen', '0', 'deleted', '0', 'size', '0',
    'specialuse', special or '')
  redis.call('HSET', P .. 'mailboxes', name, fmt(id))
  emit(id, 1, 'l')
  return id
end

-- The id of a mailbox by (normalized) name; INBOX is created on first use.
local function resolve(name, now)
  local id = redis.call('HGET', P .. 'mailboxes', name)
  if not id and name == 'INBOX' then id = fmt(create_mb('INBOX', '', now)) end
  return id
end

-- RFC 3501 §6.3.3/§6.3.5: superiors of a created or renamed-to name are created as needed.
local function create_superiors(name, now)
  local i = 0
  while true do
    i = string.find(name, '/', i + 1, true)
    if not i then break end
    local sup = string.sub(name, 1, i - 1)
    if not resolve(sup, now) then create_mb(sup, '', now) end
  end
end

local function flag_counts(m, flags, sign)
  if not has(flags, '\\Seen') then redis.call('HINCRBY', mbkey(m), 'unseen', sign) end
  if has(flags, '\\Deleted') then redis.call('HINCRBY', mbkey(m), 'deleted', sign) end
end

local function index_flags(m, uid, flags)
  if has(flags, '\\Seen') then
    redis.call('ZREM', K('unseen', m), uid)
  else
    redis.call('ZADD', K('unseen', m), uid, uid)
  end
  if has(flags, '\\Deleted') then
    redis.call('ZADD', K('deleted', m), uid, uid)
  else
    redis.call('ZREM', K('deleted', m), uid)
  end
end

local function note_keywords(m, flags)
  for _, f in ipairs(flags) do
    if is_keyword(f) then redis.call('HSETNX', K('kw', m), string.lower(f), f) end
  end
end

-- The full-text index is not in Redis: it is a tantivy index per user on local disk and object
-- storage (crate yubin-text-index), built by the indexer from a queue kept here.
-- "{u:<id>}:idx:<m>" maps each UID not yet in the index to its search text (JSON, computed at
-- delivery) or, for a copy of a message whose text has already left Redis, to
-- "@<source mailbox> <source uid>" (the indexer copies the source's document). The indexer
-- (index_claim, index_commit) deletes entries once a published index generation holds them;
-- "{u:<id>}:ix" 'gen' is that generation, read by SEARCH in the same script as the entries
-- still queued, so every message is answered either from the index (at least that
-- generation) or from its queued text: exact whatever the indexer's lag.
-- "{u:<id>}:ixdel" lists what the index must forget: "<m> <uid>" per expunged message that may
-- be in it, "<m> *" per deleted mailbox. "{u:<id>}:ixlease" is the indexer's lease.
-- "{u:<id>}:ixrefs" counts the queued copy references per source ("<m> <uid>") and per source
-- mailbox ("<m> *"): a removal is applied only once nothing queued refers to what it removes,
-- so a reference always finds its source in the index (index_claim, index_commit).
local IXDEL = P .. 'ixdel'
local IXLEASE = P .. 'ixlease'
local IXREFS = P .. 'ixrefs'

-- Counts (d = 1) or uncounts (d = -1) queued value v if it is a copy reference.
local function index_ref(v, d)
  if string.sub(v, 1, 1) ~= '@' then return end
  local src = string.sub(v, 2)
  for _, field in ipairs({ src, string.match(src, '^(%S+)') .. ' *' }) do
    if redis.call('HINCRBY', IXREFS, field, d) <= 0 then redis.call('HDEL', IXREFS, field) end
  end
end

-- Drops the queued entry of message uid of mailbox m; whether there was one.
local function index_unqueue(m, uid)
  local v = redis.call('HGET', K('idx', m), uid)
  if not v then return false end
  index_ref(v, -1)
  redis.call('HDEL', K('idx', m), uid)
  return true
end

-- Called when message uid of mailbox m goes. A message whose text is still queued is not in the
-- index, unless an indexer has claimed it already (lease held): then it may be in the
-- generation being built, and must be forgotten too.
local function index_forget(m, uid)
  if not index_unqueue(m, uid) or redis.call('EXISTS', IXLEASE) == 1 then
    redis.call('RPUSH', IXDEL, m .. ' ' .. uid)
  end
end

-- Search trigram postings of releases before the index moved out of Redis
-- ("{u:<id>}:g:<m>:<gram hex>", "{u:<id>}:gl:<m>", "{u:<id>}:ug:<m>", the mailbox field
-- 'grams'): no script writes them any more; index_migrate removes them in bounded steps, and
-- a mailbox dropped before that takes its postings with it.
local function gram_key(m, g) return P .. 'g:' .. m .. ':' .. g end
local UNINDEXED = '*'

local function remove_grams(m, uid)
  local grams = redis.call('HGET', K('gl', m), uid)
  if not grams then return end
  if grams == UNINDEXED then
    redis.call('SREM', K('ug', m), uid)
  else
    -- SREM of a set's last member deletes the key, so no empty posting lingers.
    for g in string.gmatch(grams, '%S+') do redis.call('SREM', gram_key(m, g), uid) end
  end
  redis.call('HDEL', K('gl', m), uid)
end

-- idx: the message's queued search text (see index_forget above).
local function add_msg(m, uid, flags, rec, sum, idx, ms)
  redis.call('ZADD', K('uids', m), uid, uid)
  redis.call('HSET', K('flags', m), uid, table.concat(flags, ' '))
  redis.call('HSET', K('msg', m), uid, rec)
  redis.call('HSET', K('sum', m), uid, sum)
  redis.call('HSET', K('idx', m), uid, idx)
  index_ref(idx, 1)
  redis.call('ZADD', K('modseq', m), ms, uid)
  index_flags(m, uid, flags)
  note_keywords(m, flags)
  redis.call('HINCRBY', mbkey(m), 'exists', 1)
  redis.call('HINCRBY', mbkey(m), 'size', rec_size(rec))
  flag_counts(m, flags, 1)
end

-- Quota (RFC 9208): "{u:<id>}:quota" holds the account's exact usage, 'storage' (sum of
-- RFC822.SIZE) and 'messages', and its limits 'storage_limit' / 'message_limit' (absent or ''
-- for none). Usage changes inside the same script as the write it accounts for.
local QUOTA = P .. 'quota'

-- The counters are created with the account; an account made before quotas were kept gets
-- them computed once from its mailboxes' counts (exact), before the script changes any.
local function usage_init()
  if redis.call('HEXISTS', QUOTA, 'messages') == 1 then return end
  local bytes, msgs = 0, 0
  for _, m in ipairs(redis.call('HVALS', P .. 'mailboxes')) do
    local v = redis.call('HMGET', mbkey(m), 'exists', 'size')
    msgs = msgs + (tonumber(v[1]) or 0)
    bytes = bytes + (tonumber(v[2]) or 0)
  end
  redis.call('HSET', QUOTA, 'storage', fmt(bytes), 'messages', fmt(msgs))
end

-- An error reply when adding `bytes` and `msgs` would exceed a limit, else nil. Scripts call it
-- before writing anything: the whole operation is refused (RFC 9208 §5).
local function quota_refusal(bytes, msgs)
  usage_init()
  local q = redis.call('HMGET', QUOTA, 'storage', 'messages', 'storage_limit', 'message_limit')
  local limit = tonumber(q[3])
  if limit and tonumber(q[1]) + bytes > limit then
    return overquota('storage limit of ' .. fmt(limit) .. ' bytes reached')
  end
  limit = tonumber(q[4])
  if limit and tonumber(q[2]) + msgs > limit then
    return overquota('limit of ' .. fmt(limit) .. ' messages reached')
  end
  return nil
end

local function usage_add(bytes, msgs)
  usage_init()
  if bytes ~= 0 then redis.call('HINCRBY', QUOTA, 'storage', bytes) end
  if msgs ~= 0 then redis.call('HINCRBY', QUOTA, 'messages', msgs) end
end

-- Removes a message and logs (uid, modseq) for QRESYNC VANISHED (RFC 7162 §3.2.10); returns
-- its size.
local function expunge_msg(m, uid, ms)
  local flags = split(redis.call('HGET', K('flags', m), uid))
  local rec = redis.call('HGET', K('msg', m), uid)
  redis.call('ZREM', K('uids', m), uid)
  redis.call('HDEL', K('flags', m), uid)
  redis.call('HDEL', K('msg', m), uid)
  redis.call('HDEL', K('sum', m), uid)
  index_forget(m, uid)
  remove_grams(m, uid)
  redis.call('ZREM', K('modseq', m), uid)
  redis.call('ZREM', K('unseen', m), uid)
  redis.call('ZREM', K('deleted', m), uid)
  redis.call('ZADD', K('expunged', m), ms, uid)
  redis.call('HINCRBY', mbkey(m), 'exists', -1)
  local size = rec_size(rec)
  redis.call('HINCRBY', mbkey(m), 'size', -size)
  flag_counts(m, flags, -1)
  return size
end

-- Keeps the expunge log of mailbox m to MAX_EXPUNGE_LOG entries, dropping the oldest, and
-- records in 'vanished_floor' the highest MODSEQ dropped: a QRESYNC from at or above it is
-- still answered exactly, one from below gets every UID not in the mailbox (RFC 7162
-- §3.2.5.2). Called once per expunging write; drops at most what that write added beyond the
-- cap (plus any excess of a lowered cap), each drop O(log n).
local function trim_expunged(m)
  local over = redis.call('ZCARD', K('expunged', m)) - MAX_EXPUNGE_LOG
  if over <= 0 then return end
  local last = redis.call('ZRANGE', K('expunged', m), over - 1, over - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', K('expunged', m), 0, over - 1)
  local dropped = tonumber(last[2])
  local floor = tonumber(redis.call('HGET', mbkey(m), 'vanished_floor') or '0')
  if dropped > floor then redis.call('HSET', mbkey(m), 'vanished_floor', fmt(dropped)) end
end

-- UIDs of mailbox m inside the (lo, hi) pairs ARGV[first], ARGV[first+1], ... (ascending,
-- because the pairs are sorted and disjoint).
local function uids_in(key, first)
  local out = {}
  for r = first, #ARGV - 1, 2 do
    local got = redis.call('ZRANGEBYSCORE', key, ARGV[r], ARGV[r + 1])
    for _, u in ipairs(got) do out[#out + 1] = u end
  end
  return out
end

-- The first `limit` UIDs of key within the (lo, hi) pairs from ARGV[first] on, and whether
-- more remain: a script that works in batches reads no more than it will process.
local function first_uids_in(key, first, limit)
  local out = {}
  for r = first, #ARGV - 1, 2 do
    local got = redis.call('ZRANGEBYSCORE', key, ARGV[r], ARGV[r + 1], 'LIMIT', 0,
      limit - #out + 1)
    for _, u in ipairs(got) do
      if #out == limit then return out, true end
      out[#out + 1] = u
    end
  end
  return out, false
end

-- Copies (or moves) messages to dst with fresh UIDs in ascending source order, keeping flags
-- and internal date (RFC 3501 §6.4.7); a move expunges the sources in the same step (RFC 6851).
local function transfer(src, uids, dst, remove)
  if #uids == 0 then return {} end
  local sms, dms
  if remove then sms = bump(src) end
  if remove and src == dst then dms = sms else dms = bump(dst) end
  local mapping = {}
  for _, uid in ipairs(uids) do
    local flags = split(redis.call('HGET', K('flags', src), uid))
    local rec = redis.call('HGET', K('msg', src), uid)
    local sum = redis.call('HGET', K('sum', src), uid) or ''
    -- Still queued: the copy queues the same text; else the index copies the source's
    -- document (the reference is read before a move's expunge forgets the source, and the
    -- indexer applies copies before removals).
    local idx = redis.call('HGET', K('idx', src), uid) or ('@' .. src .. ' ' .. uid)
    if remove then expunge_msg(src, uid, sms) end
    local nu = take_uid(dst)
    add_msg(dst, nu, flags, rec, sum, idx, dms)
    mapping[#mapping + 1] = uid
    mapping[#mapping + 1] = fmt(nu)
  end
  emit(dst, dms, 'a')
  if remove then
    trim_expunged(src)
    emit(src, sms, 'e')
  end
  return mapping
end

local function uid_room(m, n)
  local next_uid = tonumber(redis.call('HGET', mbkey(m), 'uidnext'))
  return next_uid + n - 1 <= MAX_UID
end

-- 'md' holds the mailbox's METADATA entries (RFC 5464): they go with the mailbox.
local MB_KINDS = { 'uids', 'flags', 'msg', 'sum', 'idx', 'modseq', 'expunged', 'unseen',
  'deleted', 'kw', 'gl', 'ug', 'md' }
-- The METADATA bytes (names and values) of one `md` hash, taken off the account's total when
-- the hash goes; the hash holds at most the front-end's entries-per-mailbox limit.
local function md_forget(m)
  local all = redis.call('HGETALL', K('md', m))
  if #all == 0 then return end
  local bytes = 0
  for i = 1, #all do bytes = bytes + #all[i] end
  local left = redis.call('DECRBY', P .. 'mdbytes', bytes)
  if left <= 0 then redis.call('DEL', P .. 'mdbytes') end
end

local function drop_mb(m, name)
  md_forget(m)
  -- Postings of an unmigrated mailbox: the sets that exist are exactly the grams of the
  -- messages still listed in 'gl'.
  local dropped = {}
  for _, grams in ipairs(redis.call('HVALS', K('gl', m))) do
    for g in string.gmatch(grams, '%S+') do
      if g ~= UNINDEXED and not dropped[g] then
        dropped[g] = true
        redis.call('UNLINK', gram_key(m, g))
      end
    end
  end
  for _, v in ipairs(redis.call('HVALS', K('idx', m))) do index_ref(v, -1) end
  redis.call('UNLINK', mbkey(m))
  for _, what in ipairs(MB_KINDS) do redis.call('UNLINK', K(what, m)) end
  redis.call('RPUSH', IXDEL, m .. ' *')
  redis.call('HDEL', P .. 'mailboxes', name)
end

-- Bulk reads and writes in chunks: one command per CHUNK messages instead of one per message,
-- and never more arguments than Lua's stack allows for unpack().
local CHUNK = 1000

local function bulk_read(cmd, key, ids)
  local out = {}
  for i = 1, #ids, CHUNK do
    local part = redis.call(cmd, key, unpack(ids, i, math.min(i + CHUNK - 1, #ids)))
    -- missing entries come back as false, which ipairs walks over (it stops only at nil)
    for _, v in ipairs(part) do out[#out + 1] = v end
  end
  return out
end
local function hmget_all(key, ids) return bulk_read('HMGET', key, ids) end

-- The queued search texts (see index_forget) of `uids` of mailbox m, in order, while they fit
-- in `budget` bytes (always at least one): a list with one entry per text read, false for a
-- uid no longer queued (indexed or expunged since). It stops before the first text that does
-- not fit, so what one SEARCH step reads is bounded by the budget, not by the indexer's lag.
local function queued_texts(m, uids, budget)
  local key, out, used = K('idx', m), {}, 0
  for i, uid in ipairs(uids) do
    local len = redis.call('HSTRLEN', key, uid)
    if i > 1 and used + len > budget then break end
    used = used + len
    if len == 0 then out[i] = false else out[i] = redis.call('HGET', key, uid) end
  end
  return out
end
local function zmscore_all(key, ids) return bulk_read('ZMSCORE', key, ids) end

-- Runs `cmd key <flat items>` in chunks of `per * CHUNK` items (per = items per entry).
local function bulk_write(cmd, key, items, per)
  local step = per * CHUNK
  for i = 1, #items, step do
    redis.call(cmd, key, unpack(items, i, math.min(i + step - 1, #items)))
  end
end

-- Flat { uid, flags, record, modseq[, extra] ... } rows for `uids` of mailbox m.
local function rows(m, uids, extra_kind)
  local flags = hmget_all(K('flags', m), uids)
  local recs = hmget_all(K('msg', m), uids)
  local mss = zmscore_all(K('modseq', m), uids)
  local extra
  if extra_kind then extra = hmget_all(K(extra_kind, m), uids) end
  local out = {}
  for i, uid in ipairs(uids) do
    out[#out + 1] = uid
    out[#out + 1] = flags[i] or ''
    out[#out + 1] = recs[i] or ''
    out[#out + 1] = mss[i] or '0'
    if extra then out[#out + 1] = extra[i] or '' end
  end
  return out
end

-- Moves mailbox m to a new UIDVALIDITY after Redis lost writes (a failover to a replica that
-- missed them): UIDs the lost writes handed out will be handed out again, so they must not be
-- under the UIDVALIDITY clients saw them with (RFC 3501 §2.3.1.1). The messages stay; clients
-- see the new UIDVALIDITY and resynchronize (RFC 7162 §3.2.5.1 for QRESYNC). The new value
-- exceeds the old one, the user's last one and `floor` (what meta saw handed out); UIDNEXT is
-- raised to `floor_next` so that UIDs clients saw are not reused even under the new value.
-- Returns the new UIDVALIDITY.
local function revalidate(m, now, floor, floor_next)
  local old = tonumber(redis.call('HGET', mbkey(m), 'uidvalidity'))
  local v = next_uidvalidity(math.max(tonumber(now), old + 1, tonumber(floor) or 0))
  redis.call('HSET', mbkey(m), 'uidvalidity', fmt(v))
  local cur = tonumber(redis.call('HGET', mbkey(m), 'uidnext'))
  local want = tonumber(floor_next) or 0
  if want > cur and want <= MAX_UID + 1 then redis.call('HSET', mbkey(m), 'uidnext', fmt(want)) end
  emit(m, redis.call('HGET', mbkey(m), 'highestmodseq'), 'l')
  return v
end

-- A deleted account leaves the tombstone "{u:<id>}:gone" (ids are never reused). A session or a
-- delivery that resolved the id before the deletion must not recreate its keys afterwards, so
-- every per-user script refuses before touching anything: one EXISTS in the user's slot.
-- (Accounts never created still work: the store creates INBOX on first use.)
if redis.call('EXISTS', P .. 'gone') == 1 then
  do return notfound('account (deleted)') end
end
