-- list_mailboxes: ARGV = P, now
resolve('INBOX', ARGV[2])
local all = redis.call('HGETALL', P .. 'mailboxes')
local out = {}
for i = 2, #all, 2 do out[#out + 1] = mb_info(all[i]) end
publish()
return out
