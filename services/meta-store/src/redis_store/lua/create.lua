-- create_mailbox: ARGV = P, now, name, special-use
local now, name = ARGV[2], ARGV[3]
if resolve(name, now) then
  publish()
  return exists_err('mailbox ' .. name)
end
local refusal = mailbox_room_refusal(name, 1)
if refusal then
  publish()
  return refusal
end
create_superiors(name, now)
local id = create_mb(name, ARGV[4], now)
publish()
return mb_info(id)
