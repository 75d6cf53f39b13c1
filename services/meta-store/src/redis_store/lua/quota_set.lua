-- set_quota: ARGV = P, storage limit, message limit ('' for none)
if redis.call('EXISTS', P .. 'user') == 0 then return notfound('user') end
usage_init()
redis.call('HSET', QUOTA, 'storage_limit', ARGV[2], 'message_limit', ARGV[3])
return 1
