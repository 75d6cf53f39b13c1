-- select: ARGV = P, now, name -> { info, uids, first unseen or false, keywords }
local id = resolve(ARGV[3], ARGV[2])
publish()
if not id then return notfound('mailbox ' .. ARGV[3]) end
local first = redis.call('ZRANGE', K('unseen', id), 0, 0)
return { mb_info(id), redis.call('ZRANGE', K('uids', id), 0, -1), first[1] or false,
  redis.call('HVALS', K('kw', id)) }
