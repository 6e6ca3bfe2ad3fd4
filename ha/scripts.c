/* The Lua scripts that make every mailbox rule atomic inside Redis (one
 * script, one atomic step: two coordinators publishing for the same pair
 * at the same moment are serialised by Redis), and their SHA1 for
 * EVALSHA. It must not hold any C-side logic: the data model is
 * documented here and in docs/ha.md, and only these scripts write it.
 *
 * Data model (P = "mesh:", R = recipient, S = sender; ids never hold ' '
 * or ':' since they match ^[A-Za-z0-9._-]{1,64}$):
 *   P gen           generation (16 hex), set once, shared by all nodes:
 *                   message ids are "<gen>-<seq>"
 *   P s:R           STREAM: R's queue, one entry per message, field "d" =
 *                   "<S> <epoch> <kind> <psig>\n<payload>". The entry id
 *                   "<ms>-<n>" is the message's creation time and gives
 *                   seq = ms * 1024 + n (n < 1024 is enforced), so ids rise
 *                   per recipient, an acknowledgement is one XTRIM MINID,
 *                   TTL expiry is one XTRIM MINID, and after a failover that
 *                   lost the last writes the new master still hands out
 *                   larger ids (XADD * never goes below the clock), unless
 *                   its clock is behind by more than the failover took.
 *                   The sweep deletes it once it is empty.
 *   P e:R:S         the pair (S, R): "<epoch> k <id> <id>..." with the stream
 *                   ids of what S published to R at that epoch (so a newer
 *                   epoch purges them with one XDEL, no scan), or
 *                   "<epoch> o" once more than 64 (then it scans); expires
 *                   after the pair idle time (one hour) without a publish
 *   P w:R           "1" while some coordinator holds a long poll of R
 *                   (set by the coordinator when a poll of R starts
 *                   watching, refreshed while polls continue, expires
 *                   HA_MARK_TTL_MS after the last refresh): a publish
 *                   sends the pub/sub wake only for marked recipients, so
 *                   publish-heavy load does not fan a message out to every
 *                   coordinator per publish
 *   P active        SET of recipients whose stream may hold messages: the
 *                   sweep trims what expires in mailboxes nobody polls and
 *                   deletes the empty streams
 *   P stats         HASH queued (as of the last sweep); the expired and
 *                   purged counters are each coordinator's own (metrics)
 *   P sweeplock     one coordinator sweeps per period
 *   P nonce:<hex>   replay nonces (SET NX EX, a batch per script call)
 *   P coords        ZSET node id score last refresh (ms): the registry
 *   P coordinfo     HASH node id -> entry JSON
 * All times are the Redis server's (TIME, XADD *), so coordinators' clocks
 * do not matter. The scripts keep their calls few: Lua's per-call
 * overhead is what bounds the publish rate (docs/ha.md, benchmark). */
#include "ha/ha_priv.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#define PRELUDE \
	"local P = ARGV[1]\n" \
	"local function now_ms()\n" \
	"  local t = redis.call('TIME')\n" \
	"  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
	"end\n" \
	"local function n2s(x) return string.format('%.0f', x) end\n" \
	"local function generation(cand)\n" \
	"  local g = redis.call('GET', P .. 'gen')\n" \
	"  if not g then redis.call('SET', P .. 'gen', cand) return cand end\n" \
	"  return g\n" \
	"end\n" \
	"local function k(kind, r) return P .. kind .. ':' .. r end\n" \
	"local function expire(sk, now, ttl)\n" \
	"  return redis.call('XTRIM', sk, 'MINID', n2s(now - ttl + 1))\n" \
	"end\n"

/* ARGV: 1 prefix, 2 generation candidate, 3 ttl ms, 4 pair idle ms, 5 cap,
 * 6 wake channel, 7 nonce lifetime s, then 7 per message: to, from,
 * epoch, kind, psig, payload, nonce ("" when the broker checked it
 * already). The publishes of one event-loop turn travel together; each
 * is applied on its own, in order, exactly as if it were alone (a batch
 * is as atomic as each of its messages).
 * -> one result per message, a string of words separated by one space
 *    (one reply object per message is cheaper on both sides than an
 *    array of them): "ok <gen> <stream id> <purged> <expired>" |
 *    "stale <current>" | "full <expired>" | "busy <purged> <expired>" |
 *    "replay"
 *    (the coordinator turns the stream id "<ms>-<n>" into the seq
 *    ms * 1024 + n; busy: 1024 ids in one millisecond; replay: the nonce
 *    was used,
 *    recorded as replay.lua does)
 * The outcome of each is decided before anything changes, so a refusal
 * leaves the queue and the epoch as they were (expired messages aside,
 * which are gone either way; the nonce stays used, as with a separate
 * replay check). The common cases take five or six calls. */
static const char publish_lua[] = PRELUDE
	"local ttl, cap, chan = tonumber(ARGV[3]), tonumber(ARGV[5]), ARGV[6]\n"
	"local g = generation(ARGV[2])\n"
	"local wake = {}\n"
	/* The exact purge list: what from queued for sk below epoch. */
	"local function scan(sk, from, epoch)\n"
	"  local purge = {}\n"
	"  for _, e in ipairs(redis.call('XRANGE', sk, '-', '+')) do\n"
	"    local s, ep = string.match(e[2][2], '^(%S+) (%d+) ')\n"
	"    if s == from and tonumber(ep) < epoch then purge[#purge + 1] = e[1] end\n"
	"  end\n"
	"  return purge\n"
	"end\n"
	"local function one(to, from, epoch_s, kind, psig, payload, nonce)\n"
	"  if nonce ~= '' and not redis.call('SET', P .. 'nonce:' .. nonce, '1', 'NX', 'EX', ARGV[7]) then\n"
	"    return 'replay'\n"
	"  end\n"
	"  local epoch = tonumber(epoch_s)\n"
	"  local sk, ek = P .. 's:' .. to, P .. 'e:' .. to .. ':' .. from\n"
	"  local pv0 = redis.call('GET', ek)\n"
	"  local cur, mode, ids = 0, nil, nil\n"
	"  if pv0 then\n"
	"    local e, m, rest = string.match(pv0, '^(%d+) ([ko])(.*)$')\n"
	"    if e then cur, mode, ids = tonumber(e), m, rest end\n"
	"  end\n"
	"  if epoch < cur then return 'stale ' .. n2s(cur) end\n"
	"  local n = redis.call('XLEN', sk)\n"
	"  local expired, purge = 0, nil\n"
	/* Scan the stream when the pair's id list is not known to be
	 * complete, or when the box looks full (then the count must be
	 * exact); otherwise the pair key lists them. */
	"  if epoch > cur and n > 0 then\n"
	"    if mode == 'k' and n < cap then\n"
	"      purge = {}\n"
	"      for id in string.gmatch(ids, '%S+') do purge[#purge + 1] = id end\n"
	"    else purge = scan(sk, from, epoch) end\n"
	"  elseif n >= cap then purge = scan(sk, from, epoch) end\n"
	"  local np = purge and #purge or 0\n"
	"  if n - np >= cap then\n"
	"    expired = expire(sk, now_ms(), ttl)\n"
	"    if expired > 0 then\n"
	"      n = redis.call('XLEN', sk)\n"
	"      if epoch > cur then purge = scan(sk, from, epoch) else purge = nil end\n"
	"      np = purge and #purge or 0\n"
	"    end\n"
	"    if n - np >= cap then return 'full ' .. expired end\n"
	"  end\n"
	"  local purged = 0\n"
	"  if np > 0 then purged = redis.call('XDEL', sk, unpack(purge)) end\n"
	"  local id = redis.call('XADD', sk, '*', 'd',\n"
	"    from .. ' ' .. epoch_s .. ' ' .. kind .. ' ' .. psig .. '\\n' .. payload)\n"
	/* "<ms>-<n>": n >= 1024 would not fit the message id (only ids
	 * with four digits after the dash need the number); the coordinator
	 * turns the stream id into the seq. */
	"  local dash = string.find(id, '-', 1, true)\n"
	"  if #id - dash > 3 and tonumber(string.sub(id, dash + 1)) >= 1024 then\n"
	"    redis.call('XDEL', sk, id)\n"
	"    return 'busy ' .. purged .. ' ' .. expired\n"
	"  end\n"
	"  local pv\n"
	"  if epoch > cur or not mode then pv = epoch_s .. ' k ' .. id\n"
	"  elseif mode == 'o' or #ids > 64 * 24 then pv = epoch_s .. ' o'\n"
	"  else pv = pv0 .. ' ' .. id end\n"
	"  redis.call('SET', ek, pv, 'PX', ARGV[4])\n"
	"  if n == 0 then redis.call('SADD', P .. 'active', to) end\n"
	"  wake[to] = true\n"
	"  return 'ok ' .. g .. ' ' .. id .. ' ' .. purged .. ' ' .. expired\n"
	"end\n"
	"local out = {}\n"
	"for i = 8, #ARGV - 6, 7 do\n"
	"  out[#out + 1] = one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],\n"
	"    ARGV[i + 5], ARGV[i + 6])\n"
	"end\n"
	/* One wake per recipient and batch, and only for one some
	 * coordinator watches (its mark is set before its poll reads the
	 * mailbox, on the same connection, so a publish this script makes
	 * is either seen by that read or finds the mark): a watcher re-reads
	 * its whole mailbox anyway. */
	"for to in pairs(wake) do\n"
	"  if redis.call('EXISTS', k('w', to)) == 1 then redis.call('PUBLISH', chan, to) end\n"
	"end\n"
	"return out\n";

/* ARGV: 1 prefix, 2 generation candidate, 3 peer, 4 ack generation (""
 * for none), 5 the stream id just above the acknowledged seq, 6 max (0:
 * acknowledge only), 7 ttl ms.
 * -> {gen, now ms, acked, expired, id1, entry1, id2, entry2, ...} oldest first,
 *    ids as stream ids "<ms>-<n>". */
static const char fetch_lua[] = PRELUDE
	"local now = now_ms()\n"
	"local g = generation(ARGV[2])\n"
	"local sk = k('s', ARGV[3])\n"
	"local acked = 0\n"
	"if ARGV[4] ~= '' and ARGV[4] == g then\n"
	"  acked = redis.call('XTRIM', sk, 'MINID', ARGV[5])\n"
	"end\n"
	"local expired = expire(sk, now, tonumber(ARGV[7]))\n"
	"local out = {g, n2s(now), acked, expired}\n"
	"local max = tonumber(ARGV[6])\n"
	"if max >= 1 then\n"
	"  for _, e in ipairs(redis.call('XRANGE', sk, '-', '+', 'COUNT', max)) do\n"
	"    if e[2][1] == 'd' then out[#out + 1] = e[1] out[#out + 1] = e[2][2] end\n"
	"  end\n"
	"end\n"
	"return out\n";

/* ARGV: 1 prefix, 2 ttl ms, 3 lock ms. One coordinator per period trims
 * what expired in every mailbox (also those nobody polls), deletes the
 * empty streams and counts what is queued.
 * -> {queued (cluster-wide, as of the last sweep), expired (by this call)} */
static const char sweep_lua[] = PRELUDE
	"local expired = 0\n"
	"if redis.call('SET', P .. 'sweeplock', '1', 'NX', 'PX', ARGV[3]) then\n"
	"  local now, ttl, q = now_ms(), tonumber(ARGV[2]), 0\n"
	"  local A = P .. 'active'\n"
	"  for _, r in ipairs(redis.call('SMEMBERS', A)) do\n"
	"    local sk = k('s', r)\n"
	"    expired = expired + expire(sk, now, ttl)\n"
	"    local n = redis.call('XLEN', sk)\n"
	"    if n == 0 then redis.call('DEL', sk) redis.call('SREM', A, r) else q = q + n end\n"
	"  end\n"
	"  redis.call('HSET', P .. 'stats', 'queued', q)\n"
	"end\n"
	"return {redis.call('HGET', P .. 'stats', 'queued') or '0', expired}\n";

/* ARGV: 1 prefix, 2 node id ("" to only read), 3 entry JSON, 4 ttl ms,
 * 5 forget ms. -> {now ms, id1, refreshed1, json1, ...} of live nodes. */
static const char registry_lua[] = PRELUDE
	"local now = now_ms()\n"
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

/* ARGV: 1 prefix, 2 lifetime s, 3.. nonces (32 hex, checked by the
 * coordinator). Records each with SET NX EX; -> one 1 (first use) or 0
 * (seen) per nonce. The nonces of one event-loop turn travel together. */
static const char replay_lua[] =
	"local out = {}\n"
	"for i = 3, #ARGV do\n"
	"  if redis.call('SET', ARGV[1] .. 'nonce:' .. ARGV[i], '1', 'NX', 'EX', ARGV[2]) then\n"
	"    out[#out + 1] = 1\n"
	"  else\n"
	"    out[#out + 1] = 0\n"
	"  end\n"
	"end\n"
	"return out\n";

static struct ha_script scripts[HA_SCRIPT_COUNT] = {
	[HA_SCRIPT_PUBLISH] = { "publish", publish_lua, "" },
	[HA_SCRIPT_FETCH] = { "fetch", fetch_lua, "" },
	[HA_SCRIPT_SWEEP] = { "sweep", sweep_lua, "" },
	[HA_SCRIPT_REGISTRY] = { "registry", registry_lua, "" },
	[HA_SCRIPT_REPLAY] = { "replay", replay_lua, "" },
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
