-- undoes user_create when another caller won the name: ARGV = P
local all = redis.call('HGETALL', P .. 'mailboxes')
for i = 1, #all, 2 do drop_mb(all[i + 1], all[i]) end
redis.call('UNLINK', P .. 'user', P .. 'seq', P .. 'mailboxes', P .. 'subs')
return 1
