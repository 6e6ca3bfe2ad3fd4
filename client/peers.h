/* The peer table (CONTRACT section 5): who is in the mesh and which
 * loopback ports or VIPs stand for each peer. Parsed and validated once at
 * start from --peers, read-only afterwards. See docs/forwarding.md. */
#ifndef MESH_CLIENT_PEERS_H
#define MESH_CLIENT_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum peers_plan {
	PEERS_PLAN_IDENTITY = 1, /* {"peers":[{"id","ports":[...]}]} */
	PEERS_PLAN_VIP = 2,      /* {"vip_net","allow","peers":[{"id","vip"}]} */
};

enum {
	PEERS_TEXT_MAX   = 1 << 20, /* bytes of --peers, file or inline JSON */
	PEERS_MAX        = 1024,    /* peers in one table */
	PEERS_PORTS_MAX  = 64,      /* identity ports per peer */
	PEERS_ALLOW_MAX  = 64,      /* allow entries (peer-VIP plan) */
	PEERS_ID_MAX     = 64,      /* CONTRACT section 2: ^[A-Za-z0-9._-]{1,64}$ */
	PEERS_DIGEST_HEX = 12,      /* hex digits of the logged digest */
};

struct peer_table;

/* arg is the --peers value: inline JSON when its first non-blank byte is
 * '{', else a file path. self_id is --id (NULL skips that check). On
 * failure returns an errno (EINVAL for a bad table) and writes one line
 * naming the problem and the option into err; the caller prints it and
 * exits 2. Free the table with mem_deref. */
int peers_load(struct peer_table **tp, const char *arg, const char *self_id,
	       char *err, size_t errlen);
/* The same from JSON text already in memory (len bytes, no NUL needed). */
int peers_parse(struct peer_table **tp, const char *json, size_t len,
		const char *self_id, char *err, size_t errlen);

/* True when id matches ^[A-Za-z0-9._-]{1,64}$. */
bool peers_id_valid(const char *id);

enum peers_plan peers_plan(const struct peer_table *t);
size_t peers_count(const struct peer_table *t);
/* Peers are kept sorted by id; i runs over 0 .. peers_count()-1. */
const char *peers_id(const struct peer_table *t, size_t i);
/* Index of id, or -1. */
int peers_find(const struct peer_table *t, const char *id);
/* Index of --id (0 when the table was loaded without one). */
size_t peers_self(const struct peer_table *t);

/* Identity-port plan: ports per peer (the same for every peer) and port
 * `slot` of peer i. Both are 0 in the peer-VIP plan. */
size_t peers_nports(const struct peer_table *t);
uint16_t peers_port(const struct peer_table *t, size_t i, size_t slot);

/* Peer-VIP plan: the VIP of peer i as an IPv4 address in host byte order
 * (vip_net + vip), and the allow list sorted by port. */
uint32_t peers_vip_addr(const struct peer_table *t, size_t i);
uint32_t peers_vip_net(const struct peer_table *t, unsigned *prefix);
size_t peers_nallow(const struct peer_table *t);
uint16_t peers_allow_port(const struct peer_table *t, size_t k);
bool peers_allow_udp(const struct peer_table *t, size_t k);
/* Index k of port in the allow list, or -1. */
int peers_allow_find(const struct peer_table *t, uint16_t port);

/* The canonical serialisation (docs/forwarding.md) and the first 12 hex
 * digits of its SHA-256: the same on every machine given the same table,
 * whatever the key order, peer order or whitespace of the input. */
const char *peers_canonical(const struct peer_table *t);
const char *peers_digest(const struct peer_table *t);

#endif
