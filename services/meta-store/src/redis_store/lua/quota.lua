-- quota: ARGV = P -> { storage, messages, storage_limit or '', message_limit or '' }
if redis.call('EXISTS', P .. 'user') == 0 then return notfound('user') end
usage_init()
local q = redis.call('HMGET', QUOTA, 'storage', 'messages', 'storage_limit', 'message_limit')
return { q[1], q[2], q[3] or '', q[4] or '' }
