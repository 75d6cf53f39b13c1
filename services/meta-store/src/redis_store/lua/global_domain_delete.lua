-- Global (no user prefix). KEYS[1] = "domains"; ARGV = name.
local name = ARGV[1]
if not redis.call('HGET', KEYS[1], name) then
  return redis.error_reply('YNOTFOUND domain ' .. name)
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i + 1] == name then
    return redis.error_reply('YINVALID domain ' .. name .. ' is the target of alias domain ' ..
      all[i] .. '; delete that first')
  end
end
redis.call('HDEL', KEYS[1], name)
return 1
