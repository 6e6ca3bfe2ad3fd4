/* The Lua scripts that make every mailbox rule atomic inside Redis (one
 * script, one atomic step: two coordinators publishing for the same pair
 * at the same moment are serialised by Redis), and their SHA1 for
 * EVALSHA. It must not hold any C-side logic: the data model is
 * documented here and in docs/ha.md, and only these scripts write it.
 *
 * Data model (P = "mesh:", R = recipient, S = sender, ids never hold ' '
 * or ':' since they match ^[A-Za-z0-9._-]{1,64}$):
 *   P gen           generation (16 hex), set once, shared by all nodes:
 *                   message ids are "<gen>-<seq>"
 *   P q:R           ZSET member M score seq: R's queue in seq order
 *   P x:R           ZSET member M score expiry (ms): TTL bookkeeping
 *   P p:R:S         ZSET member M score epoch: S's messages queued for R
 *   P m:R           HASH M -> "<created ms> <epoch> <kind> <psig>\n<payload>"
 *   P n:R           last seq given to R (expires with the pair idle time)
 *   P d:R:S:<sha1>  seq of the message S published to R with this content
 *                   (sha1 of epoch, kind, psig, payload), for the message
 *                   TTL: a retried publish (say after a 503 during a
 *                   failover) gets the first one's id instead of a copy
 *   P e:R           HASH S -> current epoch of the pair (S, R)
 *   P pairs         ZSET "R S" score last publish (ms): idle pairs swept
 *   P active        ZSET R score latest expiry in R's queue: sweep index
 *   P stats         HASH queued, bytes, expired, purged (cluster totals)
 *   P nonce:<hex>   replay nonces (SET NX EX, not scripted)
 *   P coords        ZSET node id score last refresh (ms): the registry
 *   P coordinfo     HASH node id -> entry JSON
 * where M = "<seq> <S> <payload bytes>". seq = max(last + 1, server time
 * in microseconds): strictly increasing per recipient, and after a
 * failover that lost the last writes the new master still hands out
 * larger numbers (unless its clock is behind by more than the failover
 * took), so an id a client already holds is never reused. All times are
 * the Redis server's (TIME), so coordinators' clocks do not matter. */
#include "ha/ha_priv.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#define PRELUDE \
	"local P = ARGV[1]\n" \
	"local function clock()\n" \
	"  local t = redis.call('TIME')\n" \
	"  return tonumber(t[1]) * 1000000 + tonumber(t[2])\n" \
	"end\n" \
	"local function n2s(x) return string.format('%.0f', x) end\n" \
	"local function generation(cand)\n" \
	"  local g = redis.call('GET', P .. 'gen')\n" \
	"  if not g then redis.call('SET', P .. 'gen', cand) return cand end\n" \
	"  return g\n" \
	"end\n" \
	"local function k(kind, r) return P .. kind .. ':' .. r end\n" \
	"local function count(field, n)\n" \
	"  if n ~= 0 then redis.call('HINCRBY', P .. 'stats', field, n) end\n" \
	"end\n" \
	"local function drop(r, m)\n" \
	"  local _, from, len = string.match(m, '^(%d+) (%S+) (%d+)$')\n" \
	"  redis.call('ZREM', k('q', r), m)\n" \
	"  redis.call('ZREM', k('x', r), m)\n" \
	"  redis.call('HDEL', k('m', r), m)\n" \
	"  if from then redis.call('ZREM', k('p', r) .. ':' .. from, m) end\n" \
	"  return tonumber(len) or 0\n" \
	"end\n" \
	"local function drop_list(r, list)\n" \
	"  local bytes = 0\n" \
	"  for _, m in ipairs(list) do bytes = bytes + drop(r, m) end\n" \
	"  count('queued', -#list)\n" \
	"  count('bytes', -bytes)\n" \
	"end\n" \
	"local function expire(r, now)\n" \
	"  local dead = redis.call('ZRANGEBYSCORE', k('x', r), '-inf', n2s(now))\n" \
	"  if #dead > 0 then drop_list(r, dead) count('expired', #dead) end\n" \
	"end\n"

/* ARGV: 1 prefix, 2 generation candidate, 3 to, 4 from, 5 epoch, 6 kind,
 * 7 psig, 8 payload, 9 ttl ms, 10 pair idle ms, 11 cap, 12 wake channel.
 * -> {"ok", gen, seq, purged} | {"ok", gen, seq, 0, "dup"} (identical
 *    message published within the TTL: not queued again) | {"stale",
 *    current} | {"full"}
 * The outcome is decided before anything changes, so a refusal leaves the
 * queue and the epoch as they were (expired messages aside, which are
 * gone either way). */
static const char publish_lua[] = PRELUDE
	"local to, from, epoch_s = ARGV[3], ARGV[4], ARGV[5]\n"
	"local epoch = tonumber(epoch_s)\n"
	"local ttl, idle, cap = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])\n"
	"local us = clock()\n"
	"local now = math.floor(us / 1000)\n"
	"local pair = to .. ' ' .. from\n"
	"local cur_s = redis.call('HGET', k('e', to), from)\n"
	"if cur_s then\n"
	"  local last = redis.call('ZSCORE', P .. 'pairs', pair)\n"
	"  if not last or tonumber(last) + idle <= now then cur_s = false end\n"
	"end\n"
	"local cur = cur_s and tonumber(cur_s) or 0\n"
	"if epoch < cur then return {'stale', cur_s} end\n"
	"local g = generation(ARGV[2])\n"
	"local dk = k('d', to) .. ':' .. from .. ':' ..\n"
	"  redis.sha1hex(epoch_s .. '\\n' .. ARGV[6] .. '\\n' .. ARGV[7] .. '\\n' .. ARGV[8])\n"
	"local prev = redis.call('GET', dk)\n"
	"if prev then\n"
	"  redis.call('PUBLISH', ARGV[12], to)\n"
	"  return {'ok', g, prev, 0, 'dup'}\n"
	"end\n"
	"expire(to, now)\n"
	"local pk = k('p', to) .. ':' .. from\n"
	"local purge = {}\n"
	"if epoch > cur then purge = redis.call('ZRANGEBYSCORE', pk, '-inf', '(' .. epoch_s) end\n"
	"if redis.call('ZCARD', k('q', to)) - #purge >= cap then return {'full'} end\n"
	"if #purge > 0 then drop_list(to, purge) count('purged', #purge) end\n"
	"local last = tonumber(redis.call('GET', k('n', to)) or '0')\n"
	"local seq = us\n"
	"if seq <= last then seq = last + 1 end\n"
	"local seq_s = n2s(seq)\n"
	"local payload = ARGV[8]\n"
	"local m = seq_s .. ' ' .. from .. ' ' .. #payload\n"
	"redis.call('SET', k('n', to), seq_s, 'PX', n2s(idle))\n"
	"redis.call('SET', dk, seq_s, 'PX', n2s(ttl))\n"
	"redis.call('ZADD', k('q', to), seq_s, m)\n"
	"redis.call('ZADD', k('x', to), n2s(now + ttl), m)\n"
	"redis.call('ZADD', pk, epoch_s, m)\n"
	"redis.call('HSET', k('m', to), m,\n"
	"  n2s(now) .. ' ' .. epoch_s .. ' ' .. ARGV[6] .. ' ' .. ARGV[7] .. '\\n' .. payload)\n"
	"redis.call('HSET', k('e', to), from, epoch_s)\n"
	"redis.call('ZADD', P .. 'pairs', n2s(now), pair)\n"
	"redis.call('ZADD', P .. 'active', 'GT', n2s(now + ttl), to)\n"
	"count('queued', 1)\n"
	"count('bytes', #payload)\n"
	"redis.call('PUBLISH', ARGV[12], to)\n"
	"return {'ok', g, seq_s, #purge}\n";

/* ARGV: 1 prefix, 2 generation candidate, 3 peer, 4 ack generation (""
 * for none), 5 ack seq, 6 max (0: acknowledge only).
 * -> {gen, now ms, acked, M1, blob1, M2, blob2, ...} oldest first. */
static const char fetch_lua[] = PRELUDE
	"local r = ARGV[3]\n"
	"local now = math.floor(clock() / 1000)\n"
	"local g = generation(ARGV[2])\n"
	"local acked = 0\n"
	"if ARGV[4] ~= '' and ARGV[4] == g then\n"
	"  local done = redis.call('ZRANGEBYSCORE', k('q', r), '-inf', ARGV[5])\n"
	"  if #done > 0 then drop_list(r, done) end\n"
	"  acked = #done\n"
	"end\n"
	"expire(r, now)\n"
	"local out = {g, n2s(now), acked}\n"
	"local max = tonumber(ARGV[6])\n"
	"if max >= 1 then\n"
	"  local ms = redis.call('ZRANGE', k('q', r), 0, max - 1)\n"
	"  if #ms > 0 then\n"
	"    local blobs = redis.call('HMGET', k('m', r), unpack(ms))\n"
	"    for i = 1, #ms do\n"
	"      if blobs[i] then out[#out + 1] = ms[i] out[#out + 1] = blobs[i] end\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return out\n";

/* ARGV: 1 prefix, 2 pair idle ms, 3 limit per kind.
 * -> {queued, bytes, expired, purged, pairs} (cluster totals). */
static const char sweep_lua[] = PRELUDE
	"local now = math.floor(clock() / 1000)\n"
	"local idle, limit = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"local boxes = redis.call('ZRANGEBYSCORE', P .. 'active', '-inf', n2s(now), 'LIMIT', 0, limit)\n"
	"for _, r in ipairs(boxes) do\n"
	"  expire(r, now)\n"
	"  local nxt = redis.call('ZRANGE', k('x', r), -1, -1, 'WITHSCORES')\n"
	"  if #nxt == 0 then redis.call('ZREM', P .. 'active', r)\n"
	"  else redis.call('ZADD', P .. 'active', nxt[2], r) end\n"
	"end\n"
	"local idle_pairs = redis.call('ZRANGEBYSCORE', P .. 'pairs', '-inf', n2s(now - idle),\n"
	"  'LIMIT', 0, limit)\n"
	"for _, p in ipairs(idle_pairs) do\n"
	"  local to, from = string.match(p, '^(%S+) (%S+)$')\n"
	"  if to then redis.call('HDEL', k('e', to), from) end\n"
	"  redis.call('ZREM', P .. 'pairs', p)\n"
	"end\n"
	"local st = redis.call('HMGET', P .. 'stats', 'queued', 'bytes', 'expired', 'purged')\n"
	"return {st[1] or '0', st[2] or '0', st[3] or '0', st[4] or '0',\n"
	"  tostring(redis.call('ZCARD', P .. 'pairs'))}\n";

/* ARGV: 1 prefix, 2 node id ("" to only read), 3 entry JSON, 4 ttl ms,
 * 5 forget ms. -> {now ms, id1, refreshed1, json1, ...} of live nodes. */
static const char registry_lua[] = PRELUDE
	"local now = math.floor(clock() / 1000)\n"
	"local Z, H = P .. 'coords', P .. 'coordinfo'\n"
	"if ARGV[2] ~= '' then\n"
	"  redis.call('ZADD', Z, n2s(now), ARGV[2])\n"
	"  redis.call('HSET', H, ARGV[2], ARGV[3])\n"
	"end\n"
	"local old = redis.call('ZRANGEBYSCORE', Z, '-inf', '(' .. n2s(now - tonumber(ARGV[5])))\n"
	"for _, id in ipairs(old) do redis.call('ZREM', Z, id) redis.call('HDEL', H, id) end\n"
	"local live = redis.call('ZRANGEBYSCORE', Z, '(' .. n2s(now - tonumber(ARGV[4])), '+inf',\n"
	"  'WITHSCORES')\n"
	"local out = {n2s(now)}\n"
	"for i = 1, #live, 2 do\n"
	"  local info = redis.call('HGET', H, live[i])\n"
	"  if info then out[#out + 1] = live[i] out[#out + 1] = live[i + 1] out[#out + 1] = info end\n"
	"end\n"
	"return out\n";

static struct ha_script scripts[HA_SCRIPT_COUNT] = {
	[HA_SCRIPT_PUBLISH] = { "publish", publish_lua, "" },
	[HA_SCRIPT_FETCH] = { "fetch", fetch_lua, "" },
	[HA_SCRIPT_SWEEP] = { "sweep", sweep_lua, "" },
	[HA_SCRIPT_REGISTRY] = { "registry", registry_lua, "" },
};

static void sha1_hex(const char *s, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (EVP_Digest(s, strlen(s), md, &n, EVP_sha1(), NULL) != 1 || n != 20) {
		/* Cannot happen with a working libcrypto; EVALSHA then gets
		 * NOSCRIPT every time and falls back to EVAL. */
		memset(out, '0', 40);
		out[40] = '\0';
		return;
	}
	for (unsigned i = 0; i < 20; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

const struct ha_script *ha_script(int which)
{
	struct ha_script *s = &scripts[which];
	if (!s->sha1[0])
		sha1_hex(s->body, s->sha1);
	return s;
}
