-- set_disabled: ARGV = P, "1" | "0" -> the account's name
if redis.call('EXISTS', P .. 'user') == 0 then return notfound('user') end
redis.call('HSET', P .. 'user', 'disabled', ARGV[2])
-- Disabling ends the account's sessions on every node (the hint is part of this write).
if ARGV[2] == '1' then emit(0, 0, 'r') end
publish()
return redis.call('HGET', P .. 'user', 'name')
