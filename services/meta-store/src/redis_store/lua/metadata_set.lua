-- set_metadata: ARGV = P, mailbox name ("" for the server entries), max entries, then triples
-- name, "1" (set) | "0" (remove), value. All or nothing: the resulting entry count and the
-- account's METADATA bytes are worked out before anything is written (a script is not rolled
-- back on error), and only growth is refused, so removing entries works under a lowered limit.
local m = '0'
if ARGV[2] ~= '' then
  m = redis.call('HGET', P .. 'mailboxes', ARGV[2])
  if not m then return notfound('mailbox ' .. ARGV[2]) end
end
local key = K('md', m)
local max = tonumber(ARGV[3])
local count = redis.call('HLEN', key)
-- bytes each named entry holds (name and value; nil: absent) as the triples so far leave it
local held = {}
local added = false
local delta = 0
for i = 4, #ARGV, 3 do
  local name = ARGV[i]
  local was = held[name]
  if was == nil then
    if redis.call('HEXISTS', key, name) == 1 then
      was = #name + redis.call('HSTRLEN', key, name)
    else
      was = false
    end
  end
  local now = false
  if ARGV[i + 1] == '1' then now = #name + #ARGV[i + 2] end
  if now and not was then
    count = count + 1
    added = true
  elseif was and not now then
    count = count - 1
  end
  delta = delta + (now or 0) - (was or 0)
  held[name] = now
end
if added and count > max then
  return overquota('more than ' .. fmt(max) .. ' metadata entries')
end
local bytes = tonumber(redis.call('GET', P .. 'mdbytes') or '0')
if delta > 0 and bytes + delta > MAX_METADATA_BYTES then
  return overquota('more than ' .. fmt(MAX_METADATA_BYTES) .. ' bytes of metadata in one account')
end
for i = 4, #ARGV, 3 do
  if ARGV[i + 1] == '1' then
    redis.call('HSET', key, ARGV[i], ARGV[i + 2])
  else
    redis.call('HDEL', key, ARGV[i])
  end
end
if bytes + delta > 0 then
  redis.call('SET', P .. 'mdbytes', fmt(bytes + delta))
else
  redis.call('DEL', P .. 'mdbytes')
end
return 1
