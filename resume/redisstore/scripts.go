package redisstore

import "github.com/redis/go-redis/v9"

// scripts are the Lua scripts of a Store, made by New so that the package
// holds no variables. Each is atomic in Redis, names every key it touches
// in KEYS (never building a key name itself), and is given keys of one
// session only, so all its keys share a hash slot in LayoutCluster.
type scripts struct {
	put, del, keys, dump, restore *redis.Script
}

func newScripts() scripts {
	return scripts{
		put:     redis.NewScript(putSrc),
		del:     redis.NewScript(deleteSrc),
		keys:    redis.NewScript(keysSrc),
		dump:    redis.NewScript(dumpSrc),
		restore: redis.NewScript(restoreSrc),
	}
}

// replicaCheckSrc starts every write script: with a number of replicas
// required (ReplicaAcks), a primary that has fewer connected refuses the
// write before writing anything, so that the caller knows it did not
// happen (WAIT afterwards could only say that it was not replicated).
const replicaCheckSrc = `
local function check_replicas(need)
  need = tonumber(need) or 0
  if need <= 0 then
    return
  end
  local info = redis.call('INFO', 'replication')
  local n = tonumber(string.match(info, 'connected_slaves:(%d+)')) or 0
  if n < need then
    error({err = 'NOREPLICAS ' .. n .. ' of ' .. need .. ' replicas connected; nothing written'})
  end
end
`

// putSrc writes one value and indexes it.
// KEYS: value key, index key. ARGV: value, TTL in ms, key name, replicas
// required. The index lives as long as its longest-lived value (PTTL is -1
// for a set SADD has just created, which any TTL exceeds).
const putSrc = replicaCheckSrc + `
check_replicas(ARGV[4])
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('SADD', KEYS[2], ARGV[3])
if redis.call('PTTL', KEYS[2]) < ttl then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
`

// deleteSrc removes one value and its index entry.
// KEYS: value key, index key. ARGV: key name, replicas required.
const deleteSrc = replicaCheckSrc + `
check_replicas(ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
`

// keysSrc returns the given names whose value exists, and drops the others
// from the index.
// KEYS: index key, then the value key of each name. ARGV: the names, in the
// same order.
const keysSrc = `
local live = {}
for i = 1, #ARGV do
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    live[#live + 1] = ARGV[i]
  else
    redis.call('SREM', KEYS[1], ARGV[i])
  end
end
return live
`

// dumpSrc is Copy's first step: the DUMP of each value, false (a nil
// reply) for one that does not exist. DUMP/RESTORE copies values of any
// type and works on every Redis since 3.0 (COPY needs 6.2 and one slot).
// KEYS: the value keys.
const dumpSrc = `
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('DUMP', KEYS[i])
end
return out
`

// restoreSrc is Copy's second step: it restores every value with a new TTL,
// replacing what was there, and indexes them.
// KEYS: target index, then each target value key.
// ARGV: TTL in ms, replicas required, then name and DUMP payload of each
// value, in KEYS order.
const restoreSrc = replicaCheckSrc + `
check_replicas(ARGV[2])
local ttl = tonumber(ARGV[1])
for i = 2, #KEYS do
  redis.call('RESTORE', KEYS[i], ttl, ARGV[2 * i], 'REPLACE')
  redis.call('SADD', KEYS[1], ARGV[2 * i - 1])
end
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return #KEYS - 1
`
