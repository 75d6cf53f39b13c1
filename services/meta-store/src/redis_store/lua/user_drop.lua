-- removes every key of an account: undoes user_create when another caller won the name, and is
-- the last step of delete_user (after the name and aliases are gone). ARGV = P
local all = redis.call('HGETALL', P .. 'mailboxes')
for i = 1, #all, 2 do
  local ms = redis.call('HGET', mbkey(all[i + 1]), 'highestmodseq') or '0'
  drop_mb(all[i + 1], all[i])
  -- sessions still open on the account learn that their mailbox is gone
  emit(all[i + 1], ms, 'l')
end
-- K('md', 0): the account's server METADATA entries, and their byte count
redis.call('UNLINK', P .. 'user', P .. 'seq', P .. 'mailboxes', P .. 'subs', QUOTA,
  P .. 'aliases', K('md', 0), P .. 'mdbytes', P .. 'ix', IXDEL, IXLEASE, IXREFS)
-- The tombstone: from now on every per-user script refuses this id (see the prelude).
redis.call('SET', P .. 'gone', '1')
emit(0, 0, 'r')
publish()
return 1
