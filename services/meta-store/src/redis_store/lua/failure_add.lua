-- One more failed login for KEYS[1] (a `thr:{...}` counter), forgotten ARGV[1] ms after this
-- one. INCR and PEXPIRE in one script so that a counter never exists without an expiry (a crash
-- between the two would otherwise keep it forever).
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
