/**
 * The Lua scripts the Redis broker runs: each one atomic step in Redis, so that numbering,
 * history and the message sent to other processes can never disagree.
 *
 * Keys of one topic (`K` = prefix + `{` + the topic, percent-encoded + `}`; the braces keep a
 * topic's keys in one Redis Cluster slot):
 *   K:log   hash  e = epoch, s = last seq
 *   K:hist  stream, one entry per message, id `<seq>-1`, fields f (flags), o (origin),
 *           t (time, ms, Redis's clock), p (payload); capped at the history size
 * and the pub/sub channel `K:msg`, on which each message goes out as one line of header,
 * `duet1 <seq> <epoch> <flags> <origin>\n`, followed by its payload.
 *
 * A log that is missing (never made, expired, or Redis lost its data) is made again with a
 * new epoch, and the old history deleted with it: numbering starts over, and clients are told.
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
 * Publish. KEYS: log, hist. ARGV: channel, payload (or its head), tail, has tail ('1'/'0'),
 * flags, history size, (unused), topic ttl ms, new epoch, origin.
 * Numbers the message, appends it to the history, publishes it; returns { seq, epoch }. A
 * topic without history that no process follows is forgotten at once (as in memory).
 */
export const PUBLISH = `${ENSURE_LOG}
local epoch = ensure(ARGV[9])
local seq = redis.call('HINCRBY', KEYS[1], 's', 1)
local body = ARGV[2]
if ARGV[4] == '1' then body = body .. seq .. ARGV[3] end
local size = tonumber(ARGV[6])
local ttl = tonumber(ARGV[8])
if size > 0 then
  local now = redis.call('TIME')
  local ms = now[1] * 1000 + math.floor(now[2] / 1000)
  redis.call('XADD', KEYS[2], 'MAXLEN', size, seq .. '-1', 'f', ARGV[5], 'o', ARGV[10], 't', ms, 'p', body)
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
local receivers = redis.call('PUBLISH', ARGV[1], 'duet1 ' .. seq .. ' ' .. epoch .. ' ' .. ARGV[5] .. ' ' .. ARGV[10] .. '\\n' .. body)
if receivers == 0 and size == 0 then redis.call('DEL', KEYS[1]) end
return {seq, epoch}
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
