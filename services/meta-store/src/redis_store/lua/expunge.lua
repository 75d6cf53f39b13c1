-- expunge: ARGV = P, mailbox, restricted "1"|"0", then (lo, hi) pairs restricting the UIDs
-- -> { uid ... } expunged, ascending
local m = ARGV[2]
if not mb_exists(m) then return notfound('mailbox ' .. m) end
local doomed
if ARGV[3] == '1' then
  doomed = uids_in(K('deleted', m), 4)
else
  doomed = redis.call('ZRANGE', K('deleted', m), 0, -1)
end
if #doomed == 0 then return {} end
usage_init()
local ms = bump(m)
local bytes = 0
for _, uid in ipairs(doomed) do bytes = bytes + expunge_msg(m, uid, ms) end
usage_add(-bytes, -#doomed)
trim_expunged(m)
emit(m, ms, 'e')
publish()
return doomed
