-- set_disabled: ARGV = P, "1" | "0" -> the account's name
if redis.call('EXISTS', P .. 'user') == 0 then return notfound('user') end
redis.call('HSET', P .. 'user', 'disabled', ARGV[2])
return redis.call('HGET', P .. 'user', 'name')
