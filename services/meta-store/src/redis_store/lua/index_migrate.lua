-- index_migrate: ARGV = P, mailbox, most messages -> messages of the mailbox whose search
-- postings (from a release that kept the index in Redis) remain after this step. Removes the
-- postings of at most `most` messages, so one step stays short whatever the mailbox's size;
-- the messages' queued search texts stay and are indexed like new ones.
local m, most = ARGV[2], tonumber(ARGV[3])
local got = redis.call('HSCAN', K('gl', m), 0, 'COUNT', most)[2]
local done = 0
for i = 1, #got, 2 do
  if done >= most then break end
  remove_grams(m, got[i])
  done = done + 1
end
local left = redis.call('HLEN', K('gl', m))
if left == 0 then
  redis.call('UNLINK', K('ug', m))
  redis.call('HDEL', mbkey(m), 'grams')
end
return left
