-- mailbox_status: ARGV = P, now, name
local id = resolve(ARGV[3], ARGV[2])
publish()
if not id then return notfound('mailbox ' .. ARGV[3]) end
return mb_info(id)
