-- set_subscribed: ARGV = P, name, "1" | "0"
local changed
if ARGV[3] == '1' then
  changed = redis.call('SADD', P .. 'subs', ARGV[2])
else
  changed = redis.call('SREM', P .. 'subs', ARGV[2])
end
if changed == 1 then emit(0, 0, 'l') end
publish()
return changed
