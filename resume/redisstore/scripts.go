package redisstore

import "github.com/redis/go-redis/v9"

// scripts are the Lua scripts of a Store, made by New so that the package
// holds no variables. Each is atomic in Redis.
type scripts struct {
	put, del, keys, copy *redis.Script
}

func newScripts() scripts {
	return scripts{
		put:  redis.NewScript(putSrc),
		del:  redis.NewScript(deleteSrc),
		keys: redis.NewScript(keysSrc),
		copy: redis.NewScript(copySrc),
	}
}

// putSrc writes one value and indexes it.
// KEYS: value key, index key. ARGV: value, TTL in ms, key name.
// The index lives as long as its longest-lived value (PTTL is -1 for a set
// SADD has just created, which any TTL exceeds).
const putSrc = `
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('SADD', KEYS[2], ARGV[3])
if redis.call('PTTL', KEYS[2]) < ttl then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
`

// deleteSrc removes one value and its index entry.
// KEYS: value key, index key. ARGV: key name.
const deleteSrc = `
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
`

// keysSrc lists the names in an index whose value still exists, and
// drops the others from the index.
// KEYS: index key. ARGV: the session's value-key prefix.
const keysSrc = `
local live = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. name) == 1 then
    live[#live + 1] = name
  else
    redis.call('SREM', KEYS[1], name)
  end
end
return live
`

// copySrc copies every live value of one session to another with a new
// TTL, and indexes the copies. DUMP/RESTORE copies values of any type and
// works on every Redis since 3.0 (COPY needs 6.2). Names given after the
// third argument (found by SCAN) are copied too.
// KEYS: source index, target index. ARGV: source prefix, target prefix, TTL
// in ms, extra names...
const copySrc = `
local ttl = tonumber(ARGV[3])
local names = redis.call('SMEMBERS', KEYS[1])
for i = 4, #ARGV do
  names[#names + 1] = ARGV[i]
end
local seen = {}
local n = 0
for _, name in ipairs(names) do
  if not seen[name] then
    seen[name] = true
    local value = redis.call('DUMP', ARGV[1] .. name)
    if value then
      redis.call('RESTORE', ARGV[2] .. name, ttl, value, 'REPLACE')
      redis.call('SADD', KEYS[2], name)
      n = n + 1
    end
  end
end
if n > 0 and redis.call('PTTL', KEYS[2]) < ttl then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return n
`
