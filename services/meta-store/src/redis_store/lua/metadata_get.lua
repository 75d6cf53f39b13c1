-- get_metadata: ARGV = P, mailbox name ("" for the server entries), "0" | "all", entries...
-- With "0" only the requested entries are read (HMGET); otherwise every entry of the mailbox
-- (bounded by the per-mailbox entry limit) and the Rust side keeps those DEPTH selects.
-- Replies a flat array name, value, ... of the entries that exist.
local m = '0'
if ARGV[2] ~= '' then
  m = redis.call('HGET', P .. 'mailboxes', ARGV[2])
  if not m then return notfound('mailbox ' .. ARGV[2]) end
end
local key = K('md', m)
if ARGV[3] ~= '0' then return redis.call('HGETALL', key) end
local out = {}
local names = {}
for i = 4, #ARGV do names[#names + 1] = ARGV[i] end
if #names == 0 then return out end
local values = redis.call('HMGET', key, unpack(names))
for i, v in ipairs(values) do
  if v then
    out[#out + 1] = names[i]
    out[#out + 1] = v
  end
end
return out
