-- set_metadata: ARGV = P, mailbox name ("" for the server entries), max entries, then triples
-- name, "1" (set) | "0" (remove), value. All or nothing: the resulting entry count is worked
-- out before anything is written (a script is not rolled back on error), and only growth is
-- refused, so removing entries works under a lowered limit.
local m = '0'
if ARGV[2] ~= '' then
  m = redis.call('HGET', P .. 'mailboxes', ARGV[2])
  if not m then return notfound('mailbox ' .. ARGV[2]) end
end
local key = K('md', m)
local max = tonumber(ARGV[3])
local count = redis.call('HLEN', key)
local present = {}
local added = false
for i = 4, #ARGV, 3 do
  local name = ARGV[i]
  local was = present[name]
  if was == nil then was = redis.call('HEXISTS', key, name) == 1 end
  local set = ARGV[i + 1] == '1'
  if set and not was then
    count = count + 1
    added = true
  elseif was and not set then
    count = count - 1
  end
  present[name] = set
end
if added and count > max then
  return overquota('more than ' .. fmt(max) .. ' metadata entries')
end
for i = 4, #ARGV, 3 do
  if ARGV[i + 1] == '1' then
    redis.call('HSET', key, ARGV[i], ARGV[i + 2])
  else
    redis.call('HDEL', key, ARGV[i])
  end
end
return 1
