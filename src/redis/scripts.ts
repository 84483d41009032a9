/**
 * The Lua scripts the Redis broker runs: each one atomic step in Redis, so that numbering,
 * history and the message sent to other processes can never disagree.
 *
 * Keys of one topic (`K` = prefix + `{` + the topic, percent-encoded + `}`; the braces keep a
 * topic's keys in one Redis Cluster slot):
 *   K:log   hash  e = epoch, s = last seq
 *   K:hist  stream, one entry per message, id `<seq>-1`, fields f (flags), o (origin),
 *           t (time, ms, Redis's clock), p (payload); capped at the history size
 *   K:ids   hash, publish id -> the seq it was published as (OutgoingMessage.dedup)
 *   K:idt   sorted set, the same ids, each scored by when it was remembered (ms, Redis's
 *           clock, nudged up by a microsecond to stay in arrival order): what ages them out,
 *           oldest first; both capped at the dedup size and expiring after the dedup ttl
 * and the pub/sub channel `K:msg`, on which each message goes out as one line of header,
 * `duet1 <seq> <epoch> <flags> <origin>\n`, followed by its payload.
 * Outside any topic: `<prefix>dedup-scope`, a random string naming this Redis's memory of
 * publish ids (made when missing: a Redis that lost its data has a new one).
 *
 * A log that is missing (never made, expired, or Redis lost its data) is made again with a
 * new epoch, and the old history deleted with it: numbering starts over, and clients are told.
 * Remembered ids stay (they expire on their own): they still name messages that were published.
 */

/** A script and its SHA-1 (EVALSHA first; EVAL when Redis does not know it yet). */
export interface Script {
  readonly source: string;
  readonly sha: string;
}

/** Makes the log when it is missing: `epoch, seq` set; the old history goes. */
const ENSURE_LOG = `
local function ensure(newEpoch)
  local v = redis.call('HMGET', KEYS[1], 'e', 's')
  if not v[1] then
    redis.call('HSET', KEYS[1], 'e', newEpoch, 's', 0)
    redis.call('DEL', KEYS[2])
    return newEpoch, 0
  end
  return v[1], tonumber(v[2])
end
`;

/**
 * Publish. KEYS: log, hist, ids, idt. ARGV: channel, payload (or its head), tail, has tail
 * ('1'/'0'), flags, history size, (unused), topic ttl ms, new epoch, origin, publish id ('':
 * none), dedup ttl ms, dedup size.
 * With a publish id already remembered: nothing is published; returns { its seq, epoch, 1 }.
 * Otherwise numbers the message, appends it to the history, remembers its id, publishes it;
 * returns { seq, epoch, 0 }. A topic without history that no process follows is forgotten at
 * once (as in memory), unless it remembers ids.
 */
export const PUBLISH = `${ENSURE_LOG}
local epoch = ensure(ARGV[9])
local id = ARGV[11]
if id ~= '' then
  local first = redis.call('HGET', KEYS[3], id)
  if first then return {tonumber(first), epoch, 1} end
end
local seq = redis.call('HINCRBY', KEYS[1], 's', 1)
local body = ARGV[2]
if ARGV[4] == '1' then body = body .. seq .. ARGV[3] end
local size = tonumber(ARGV[6])
local ttl = tonumber(ARGV[8])
local ms = 0
if size > 0 or id ~= '' then
  local now = redis.call('TIME')
  ms = now[1] * 1000 + math.floor(now[2] / 1000)
end
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', size, seq .. '-1', 'f', ARGV[5], 'o', ARGV[10], 't', ms, 'p', body)
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
if id ~= '' then
  local idTtl = tonumber(ARGV[12])
  local old = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ms - idTtl, 'LIMIT', 0, 100)
  if #old > 0 then
    redis.call('HDEL', KEYS[3], unpack(old))
    redis.call('ZREM', KEYS[4], unpack(old))
  end
  local score = ms
  local last = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
  if last[2] and tonumber(last[2]) >= score then score = tonumber(last[2]) + 0.001 end
  redis.call('HSET', KEYS[3], id, seq)
  redis.call('ZADD', KEYS[4], score, id)
  local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[13])
  if over > 0 then
    local gone = redis.call('ZPOPMIN', KEYS[4], over)
    for i = 1, #gone, 2 do redis.call('HDEL', KEYS[3], gone[i]) end
  end
  redis.call('PEXPIRE', KEYS[3], idTtl)
  redis.call('PEXPIRE', KEYS[4], idTtl)
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
local receivers = redis.call('PUBLISH', ARGV[1], 'duet1 ' .. seq .. ' ' .. epoch .. ' ' .. ARGV[5] .. ' ' .. ARGV[10] .. '\\n' .. body)
if receivers == 0 and size == 0 and id == '' then redis.call('DEL', KEYS[1]) end
return {seq, epoch, 0}
`;

/**
 * Dedup scope. KEYS: the scope key. ARGV: a new scope. Returns the scope kept in Redis, made
 * from ARGV[1] when there is none.
 */
export const DEDUP_SCOPE = `
local scope = redis.call('GET', KEYS[1])
if scope then return scope end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`;

/** Position. KEYS: log, hist. ARGV: new epoch, topic ttl ms. Returns { epoch, seq }. */
export const POSITION = `${ENSURE_LOG}
local epoch, seq = ensure(ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return {epoch, seq}
`;

/**
 * Recover. KEYS: log, hist. ARGV: since, epoch, history ttl ms (0: none), up to (0: the last),
 * new epoch, topic ttl ms, history size.
 * Returns { epoch, seq, recovered (1/0), then flags, origin, payload for each message with
 * since < seq <= up to }, or recovered 0 when the history does not hold every one of them
 * (or holds one older than the ttl), the epoch is another, or the topic keeps no history.
 */
export const RECOVER = `${ENSURE_LOG}
local epoch, seq = ensure(ARGV[5])
local ttl = tonumber(ARGV[6])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
local since = tonumber(ARGV[1])
if epoch ~= ARGV[2] or since > seq or tonumber(ARGV[7]) == 0 then return {epoch, seq, 0} end
local upTo = tonumber(ARGV[4])
if upTo <= 0 or upTo > seq then upTo = seq end
if since >= upTo then return {epoch, seq, 1} end
local entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-1', upTo .. '-1')
if #entries ~= upTo - since then return {epoch, seq, 0} end
local maxAge = tonumber(ARGV[3])
local now = redis.call('TIME')
local ms = now[1] * 1000 + math.floor(now[2] / 1000)
local out = {epoch, seq, 1}
for _, entry in ipairs(entries) do
  local f = entry[2]
  if maxAge > 0 and ms - tonumber(f[6]) > maxAge then return {epoch, seq, 0} end
  out[#out + 1] = f[2]
  out[#out + 1] = f[4]
  out[#out + 1] = f[8]
end
return out
`;

/**
 * Lease (a leader for one job across processes). KEYS: lease. ARGV: holder id, ttl ms.
 * Takes the lease when free, renews it when held by the same id; returns 1 if held now.
 */
export const LEASE = `
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`;
