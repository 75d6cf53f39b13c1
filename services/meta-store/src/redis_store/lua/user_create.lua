-- the per-user half of create_user: ARGV = P, now, name, password hash
redis.call('HSET', P .. 'user', 'name', ARGV[3], 'password_hash', ARGV[4], 'disabled', '0')
redis.call('HSET', QUOTA, 'storage', '0', 'messages', '0')
resolve('INBOX', ARGV[2])
publish()
return 1
