/* The parsers of what Redis and the Sentinels send ha/: the publish
 * script's per-message answers, stream ids, stored mailbox entries,
 * registry entries and timestamps, Sentinel master addresses and
 * +switch-master messages (and the client's ack cursor, which is checked
 * the same way). Pure functions over bytes and a length (a few take C
 * strings, as hiredis hands them over), with explicit bounds: they must
 * not touch a hiredis reply or connection, an event loop, counters or
 * logs, and must not read past the length or NUL given (the callers check
 * the reply's type and count, and log). tests/fuzz/fuzz_redis_reply.c
 * feeds them arbitrary bytes. */
#ifndef MESH_HA_REPLY_PARSE_H
#define MESH_HA_REPLY_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ha/ha_priv.h"
#include "signaling/mailbox.h"

/* Message seq = stream id ms * RP_SEQ_PER_MS + n, n < RP_SEQ_PER_MS
 * (scripts.c enforces n). */
#define RP_SEQ_PER_MS 1024
/* Registry entries (registry.c): the JSON as stored, and each URL. */
#define RP_ENTRY_JSON_MAX 4096
#define RP_ENDPOINT_MAX 300

/* len in min..max, every byte [0-9a-f]. */
bool rp_is_hex(const char *s, size_t len, size_t min, size_t max);
/* 1..max_len decimal digits, no sign, value <= max (into *out if not NULL). */
bool rp_parse_dec(const char *s, size_t len, size_t max_len, uint64_t max, uint64_t *out);

/* A stream id "<ms>-<n>" with n < RP_SEQ_PER_MS, as *ms and the seq. */
bool rp_stream_id_seq(const char *s, size_t len, uint64_t *ms, uint64_t *seq);

/* One message's answer of the publish script (scripts.c). */
enum rp_pub_kind {
	RP_PUB_BAD,    /* malformed */
	RP_PUB_OK,     /* "ok <gen> <stream id> <purged> <expired>" */
	RP_PUB_STALE,  /* "stale <epoch>" */
	RP_PUB_FULL,   /* "full <expired>" */
	RP_PUB_REPLAY, /* "replay" */
	RP_PUB_BUSY,   /* "busy <purged> <expired>" */
};

struct rp_pub {
	enum rp_pub_kind kind;
	bool words;            /* it splits into 1..5 words (even when BAD) */
	bool first_replay;     /* ... and the first one is "replay" */
	const char *gen;       /* OK: 1..16 lower hex, points into the input */
	size_t gen_len;
	uint64_t ms, seq;      /* OK: the stream id */
	uint64_t purged;       /* OK, BUSY: <= 1000000 */
	uint64_t expired;      /* OK, BUSY, FULL: <= 1000000 */
	uint64_t epoch;        /* STALE: <= EPOCH_MAX */
};

void rp_publish_reply(const char *s, size_t len, struct rp_pub *out);

/* A stored entry "<from> <epoch> <kind> <psig>\n<payload>": fills from,
 * epoch, kind, psig, and payload/payload_len, which point into s. */
bool rp_parse_entry(const char *s, size_t len, struct mb_message *o);

/* An ack cursor (NUL-terminated), as mailbox_mem.c: 1..16 lower hex, '-',
 * 1..20 digits without overflow. 0, or -1 when malformed. */
int rp_split_cursor(const char *cursor, char gen[17], uint64_t *seq);

/* A registry entry as some coordinator wrote it, for node id (a C
 * string): the validated object (the caller owns it) or NULL. */
json_t *rp_registry_entry(const char *id, const char *text, size_t len);
/* A registry time (ms) of 1..16 bytes, s[len] being '\0' (as hiredis
 * strings are), read by strtoull: leading white space and a sign pass. */
bool rp_registry_ms(const char *s, size_t len, uint64_t *out);

/* A master host named by a Sentinel: 1..HA_HOST_MAX-1 of [A-Za-z0-9.:_-]. */
bool rp_sentinel_host(const char *s, size_t len);
/* Its port, a NUL-terminated string whose length the caller bounded: 1..65535. */
bool rp_sentinel_port(const char *s, uint16_t *port);

/* A +switch-master message "<master name> <old ip> <old port> <new ip> <new port>". */
struct rp_switch {
	char name[128];
	char oip[HA_HOST_MAX], nip[HA_HOST_MAX];
	unsigned oport, nport;
};

bool rp_switch_master(const char *data, size_t len, struct rp_switch *out);

#endif
