-- Global (no user prefix). KEYS[1] = "domains" (name -> alias_of or ''); ARGV = name, alias_of.
-- An alias domain points at a configured domain that is not itself an alias, and a domain that
-- other domains alias cannot become an alias: alias domains never chain.
local name, target = ARGV[1], ARGV[2]
if target ~= '' then
  if target == name then
    return redis.error_reply('YINVALID domain ' .. name .. ' cannot be an alias of itself')
  end
  local its = redis.call('HGET', KEYS[1], target)
  if not its then
    return redis.error_reply('YINVALID alias target domain ' .. target .. ' is not configured')
  end
  if its ~= '' then
    return redis.error_reply('YINVALID alias target domain ' .. target ..
      ' is itself an alias of ' .. its)
  end
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if all[i + 1] == name then
      return redis.error_reply('YINVALID domain ' .. name .. ' is the target of alias domain ' ..
        all[i] .. ', so it cannot be an alias')
    end
  end
end
redis.call('HSET', KEYS[1], name, target)
return 1
