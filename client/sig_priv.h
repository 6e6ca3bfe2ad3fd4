/* Internals of the signaling client shared with its tests and fuzz
 * harness: the pure parts in sig_parse.c (answer parsers, the publish
 * body builder, the message checks, the duplicate filters) and the
 * bounds sigclient.c applies. No I/O, no clocks: callers pass the time. */
#ifndef MESH_CLIENT_SIG_PRIV_H
#define MESH_CLIENT_SIG_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/sigclient.h"
#include "signaling/auth.h"
#include "signaling/keys.h"
#include "signaling/wire.h"

enum {
	SIG_COORD_MAX   = 16,   /* coordinators known at once */
	SIG_SRV_MAX     = 8,    /* addresses per server list per coordinator */
	SIG_ADDR_MAX    = 64,   /* "IP:PORT" / "[IPv6]:PORT" */
	SIG_URL_MAX     = 256,
	SIG_LIST_MAX    = 64,   /* entries of a /v1/coordinators answer */
	SIG_TURN_STR_MAX = 128, /* TURN username and password */
	SIG_SEEN_MAX    = 512,  /* recent message ids remembered */
	SIG_RECENT_MAX  = 256,  /* recent psigs remembered (content duplicates) */
};

/* Bodies we accept: a poll answer holds at most 256 messages whose 16384
 * byte payloads JSON may escape six-fold (\u00XX), plus the fields: about
 * 25.3 MB at worst. The coordinator can legitimately send that, and a
 * bound below it would wedge the mailbox (the same answer forever). */
#define SIG_POLL_BODY_MAX   (32u * 1024u * 1024u)
#define SIG_LIST_BODY_MAX   (1024u * 1024u)
#define SIG_SMALL_BODY_MAX  (64u * 1024u)

/* Why a polled message is not handed over. */
enum sig_verdict {
	SIG_OK = 0,
	SIG_DROP_TO,        /* "to" is not us */
	SIG_DROP_FROM,      /* "from" is us or not in the peer table */
	SIG_DROP_PSIG,      /* psig wrong */
};

/* The checks, in order: recipient, sender, psig. */
enum sig_verdict sig_msg_check(const struct mesh_keys *keys, const char *self,
			       const struct sig_msg *m,
			       bool (*known)(const char *id, void *arg),
			       void *arg);

/* A parsed poll answer: messages borrow strings from doc. */
struct sig_poll {
	struct sig_msg msgs[POLL_BATCH_MAX];
	size_t n;
	size_t malformed;      /* entries skipped: a field out of bounds */
	char cursor[MSG_ID_MAX + 1];
	void *doc;             /* json_t */
};
/* EBADMSG when the document is not {"messages":[...],"cursor":"..."}
 * within bounds; single bad entries are only counted. sig_poll_free()
 * after success. */
int sig_parse_poll(const char *body, size_t len, struct sig_poll *out);
void sig_poll_free(struct sig_poll *p);

/* A message id or cursor: 1..MSG_ID_MAX-1 of [A-Za-z0-9._-] (sent back
 * verbatim in a query string). */
bool sig_id_ok(const char *s, size_t len);

enum sig_srv { SIG_SRV_STUN, SIG_SRV_TURN_UDP, SIG_SRV_TURN_TCP,
	       SIG_SRV_TURN_TLS, SIG_SRV_KINDS };

struct sig_coord_info {
	char id[PEER_ID_MAX + 1];
	char url[SIG_URL_MAX];
	char srv[SIG_SRV_KINDS][SIG_SRV_MAX][SIG_ADDR_MAX];
	unsigned nsrv[SIG_SRV_KINDS];
};
/* Entries beyond max, or beyond a list's SIG_SRV_MAX, are ignored; an
 * entry with a bad id, url or address is skipped. EBADMSG for a bad
 * document. */
int sig_parse_coordinators(const char *body, size_t len,
			   struct sig_coord_info *v, size_t max, size_t *n);

struct sig_turn {
	char user[SIG_TURN_STR_MAX];
	char pass[SIG_TURN_STR_MAX];
	uint32_t ttl;          /* 1..86400 */
};
int sig_parse_turn(const char *body, size_t len, struct sig_turn *t);

/* An error answer {"error":"<code>",...,"current":N}. current is 0 when
 * absent. EBADMSG when it is not one. */
int sig_parse_error(const char *body, size_t len, char *code, size_t cap,
		    uint64_t *current);

/* The publish body with its psig, fields in the contract's order. Returns
 * 0 (*bodyp is a malloc'd NUL-terminated string: free() it), EINVAL or
 * EMSGSIZE. */
int sig_build_publish(char **bodyp, size_t *lenp, const struct mesh_keys *keys,
		      const char *from, const char *to, const char *kind,
		      uint64_t epoch, const char *payload, size_t payload_len);

/* Recent message ids (a ring): true when id was already there. */
struct sig_seen {
	char ids[SIG_SEEN_MAX][MSG_ID_MAX + 1];
	size_t next, n;
};
bool sig_seen_add(struct sig_seen *s, const char *id);

/* Recent psigs with their arrival time: the same signed content through
 * another coordinator (fan-out) within window_ms is a duplicate. */
struct sig_recent {
	struct { char psig[SIG_HEX_LEN + 1]; uint64_t at; } e[SIG_RECENT_MAX];
	size_t next;
};
bool sig_recent_add(struct sig_recent *r, const char *psig, uint64_t now_ms,
		    uint64_t window_ms);

#endif
