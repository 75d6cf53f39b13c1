-- index_commit: ARGV = P, token, base generation, new generation, n, then the n removals
-- applied, then (mailbox, uid) pairs indexed -> 1, or 0 when the lease or the base generation
-- is no longer this indexer's (another one published meanwhile), or when a copy queued
-- meanwhile refers to something a removal took out: nothing changes and the generation is
-- discarded (the next claim builds on the committed one).
-- Once generation `new` is published, the entries it holds leave the queue and the removals
-- it applied leave the list, in one step with the new generation (see index_forget).
local token, base, new, n = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if redis.call('GET', IXLEASE) ~= token then return 0 end
if (redis.call('HGET', P .. 'ix', 'gen') or '0') ~= base then return 0 end
-- The references this commit takes off the queue, then the check (before any write: a script
-- is not rolled back).
local consumed = {}
for i = 6 + n, #ARGV - 1, 2 do
  local v = redis.call('HGET', K('idx', ARGV[i]), ARGV[i + 1])
  if v and string.sub(v, 1, 1) == '@' then
    local src = string.sub(v, 2)
    for _, field in ipairs({ src, string.match(src, '^(%S+)') .. ' *' }) do
      consumed[field] = (consumed[field] or 0) + 1
    end
  end
end
for i = 6, 5 + n do
  local left = tonumber(redis.call('HGET', IXREFS, ARGV[i]) or '0') - (consumed[ARGV[i]] or 0)
  if left > 0 then return 0 end
end
redis.call('HSET', P .. 'ix', 'gen', new)
for i = 6 + n, #ARGV - 1, 2 do index_unqueue(ARGV[i], ARGV[i + 1]) end
for i = 6, 5 + n do redis.call('LREM', IXDEL, 1, ARGV[i]) end
redis.call('DEL', IXLEASE)
return 1
