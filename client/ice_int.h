/* Internals shared by client/ice*.c and client/turn_tcp.c: the session,
 * candidates, bases (the sockets and relays checks are sent from), pairs and
 * check transactions. Nothing outside those files includes this. */
#ifndef MESH_CLIENT_ICE_INT_H
#define MESH_CLIENT_ICE_INT_H

#include <re.h>

#include "client/ice.h"

/* --- Limits (every network input is bounded by these) ------------------ */

enum {
	ICE_MAX_HOST_ADDRS = 8,   /* interface addresses used as host candidates */
	ICE_MAX_SERVERS    = 24,  /* STUN/TURN servers over all coordinators */
	ICE_MAX_LCANDS     = 48,  /* local candidates */
	ICE_MAX_RCANDS     = 48,  /* candidates in a remote description */
	ICE_MAX_PRFLX      = 16,  /* remote peer-reflexive candidates learnt */
	ICE_MAX_PAIRS      = 256, /* candidate pairs */
	ICE_MAX_EARLY      = 16,  /* checks kept from before the remote description */
	ICE_UFRAG_LEN      = 8,   /* RFC 8445 5.3: at least 24 bits of randomness */
	ICE_PWD_LEN        = 24,  /* RFC 8445 5.3: at least 128 bits of randomness */
	ICE_UFRAG_MAX      = 32,  /* accepted from a peer (RFC 8839 allows 256) */
	ICE_PWD_MAX        = 64,  /* accepted from a peer (RFC 8839 allows 256) */
	ICE_FND_MAX        = 32,  /* RFC 8839 5.1: foundation = 1*32ice-char */
	/* Room in front of an outgoing packet for the TURN framing added by
	 * turnc: a Send indication (RFC 8656 11.4: 20-byte header,
	 * XOR-PEER-ADDRESS of up to 24 bytes, DATA header) or 4 bytes of
	 * ChannelData header (RFC 8656 12.4). */
	ICE_HEADROOM       = 64,
	ICE_MAX_DGRAM      = 65507, /* largest UDP payload over IPv4 */
};

/* --- Candidates ------------------------------------------------------- */

enum ice_ctype {
	ICE_CT_HOST,
	ICE_CT_SRFLX,
	ICE_CT_PRFLX,
	ICE_CT_RELAY,
};

/* How a relayed candidate reaches its TURN server (our extension
 * attribute "x-turn" in the description, docs/ice.md). */
enum ice_tr {
	ICE_TR_NONE = 0,
	ICE_TR_UDP,
	ICE_TR_TCP,
	ICE_TR_TLS,
};

struct ice_base;

struct ice_candidate {
	struct le le;             /* in s->lcands or s->rcands */
	enum ice_ctype type;      /* host, srflx, prflx or relay */
	enum ice_tr tr;           /* relay: transport to its TURN server */
	struct sa addr;           /* the transport address */
	struct sa rel;            /* related address (srflx/relay), or unset */
	uint32_t prio;            /* RFC 8445 5.1.2 priority */
	char fnd[ICE_FND_MAX + 1];/* foundation */
	struct ice_base *base;    /* local: the base it sends from (not owned) */
};

/* --- Bases: where checks and data leave from ------------------------ */

enum ice_base_kind {
	ICE_BASE_HOST,       /* a UDP socket on an interface address */
	ICE_BASE_RELAY_UDP,  /* a TURN allocation reached over UDP */
	ICE_BASE_RELAY_TCP,  /* a TURN allocation reached over TCP */
	ICE_BASE_RELAY_TLS,  /* a TURN allocation reached over TLS */
};

/* The transport behind a base: one table per kind (ice_base.c for host and
 * TURN over UDP, turn_tcp.c for TURN over TCP and TLS). */
struct ice_base_ops {
	/* Sends mb (with ICE_HEADROOM bytes free before mb->pos) to dst.
	 * Returns 0, ENOBUFS when the transport is full for now, or errno. */
	int (*send)(struct ice_base *b, const struct sa *dst, struct mbuf *mb);
	/* Relays: installs a TURN permission for dst's IP (RFC 8656 9). */
	void (*permit)(struct ice_base *b, const struct sa *dst);
	/* Relays: binds a channel to dst for the selected pair (RFC 8656 12). */
	void (*bind)(struct ice_base *b, const struct sa *dst);
	/* Releases the socket or allocation; the base object stays. */
	void (*shutdown)(struct ice_base *b);
	/* Optional: len bytes as datagrams of seg bytes (the last may be
	 * shorter) to dst in as few system calls as it can. Returns 0 or an
	 * errno with *sent the bytes of whole datagrams that went. */
	int (*send_batch)(struct ice_base *b, const struct sa *dst, const uint8_t *p, size_t len,
			  size_t seg, size_t *sent);
};

struct ice_srv {
	enum ice_server_kind kind; /* STUN, TURN over UDP/TCP/TLS */
	struct sa addr;            /* server address */
	char *user;                /* TURN username (owned) */
	char *pass;                /* TURN password (owned) */
	unsigned idx;              /* position among the servers of its kind */
};

struct ice_base {
	struct le le;              /* in s->bases */
	struct ice_session *s;     /* owner (not referenced) */
	enum ice_base_kind kind;   /* host or relay transport */
	const struct ice_base_ops *ops; /* transport functions */
	const struct ice_srv *srv; /* relays: the TURN server */
	struct sa laddr;           /* host: bound address; relay: relayed address */
	struct sa mapped;          /* relay: our address as the TURN server saw it */
	struct ice_candidate *cand;     /* its host or relay candidate, once ready */
	uint16_t lpref;            /* RFC 8445 5.1.2.1 local preference */
	bool ready;                /* relay allocated / socket bound */
	bool dead;                 /* failed or released: sends nothing more */
	bool pending;              /* counted in s->gather_pending */
	char err[96];              /* why it failed, for logs and admin */
	struct udp_sock *us;       /* host and relay-udp socket */
	struct mbuf *rxbuf;        /* host: batched reads (GRO), reused */
	bool gso;                  /* host: UDP GSO still works on us */
	struct turnc *turnc;       /* relays: the TURN client */
	struct tcp_conn *tc;       /* relay-tcp/tls: connection to the server */
	struct tls_conn *tlsc;     /* relay-tls: TLS on tc */
	struct mbuf *rx;           /* relay-tcp/tls: stream reassembly buffer */
	struct tmr tmr;            /* relay-tcp/tls: connect/allocate deadline */
	struct tmr tmr_close;      /* deferred release after a failure */
};

/* --- Pairs and check transactions ----------------------------------- */

enum ice_pstate {
	ICE_PS_WAITING,
	ICE_PS_INPROGRESS,
	ICE_PS_SUCCEEDED,
	ICE_PS_FAILED,
	ICE_PS_CANCELLED,          /* not needed any more: another pair won */
};

struct ice_txn;

struct ice_pair {
	struct le le;              /* in s->pairs, highest priority first */
	struct le tle;             /* in s->triggered (FIFO), when queued */
	struct ice_session *s;     /* owner (not referenced) */
	struct ice_base *base;     /* sends from here (referenced) */
	struct ice_candidate *lcand;    /* base's host or relay candidate (referenced) */
	struct ice_candidate *rcand;    /* remote candidate (referenced) */
	uint64_t prio;             /* RFC 8445 6.1.2.3 pair priority */
	enum ice_pstate state;     /* check state */
	bool direct;               /* neither candidate is relayed */
	bool remote_ok;            /* the peer's authenticated check came over it */
	bool nominated;            /* USE-CANDIDATE check done (either side) */
	bool nominate_on_success;  /* controlled: USE-CANDIDATE came before success */
	struct sa mapped;          /* our address in the last success response */
	enum ice_ctype ltype;      /* local type as the peer sees us */
	struct ice_txn *txn;       /* the check in flight (not referenced) */
	unsigned checks;           /* binding requests sent in total */
	uint32_t rtt_ms;           /* from an unretransmitted check */
	int send_err;              /* errno of the last send, 0 if it went out */
	char err[80];              /* why it failed or was cancelled */
};

struct ice_txn {
	struct le le;              /* in s->txns (which owns it) */
	struct ice_pair *pair;     /* the pair checked (referenced) */
	uint8_t tid[STUN_TID_SIZE];/* transaction id */
	bool use_cand;             /* carries USE-CANDIDATE (nomination) */
	bool consent;              /* RFC 7675 consent check, not an ICE check */
	bool controlling;          /* the role the request claimed */
	unsigned tx;               /* transmissions so far */
	unsigned max_tx;           /* give up after this many */
	uint32_t rto;              /* current retransmission timeout, ms */
	uint64_t t0;               /* first transmission (tmr_jiffies) */
	struct mbuf *mb;           /* the encoded request, for retransmissions */
	struct tmr tmr;            /* retransmission / timeout */
};

/* A check that came before we knew the peer's description (RFC 8445
 * 7.3.1: answered at once, acted on once the description is known). */
struct ice_early {
	struct ice_base *base;     /* where it arrived (not referenced) */
	struct sa src;             /* who sent it */
	uint32_t prio;             /* its PRIORITY */
	bool use_cand;             /* it carried USE-CANDIDATE */
};

struct ice_path {
	struct mesh_path mp;       /* first: what callers see */
	struct ice_session *s;     /* the session driving it, or NULL */
};

struct ice_session {
	struct ice_handlers h;     /* caller's handlers */
	void *arg;                 /* their argument */
	char name[72];             /* for log lines */
	enum ice_state state;      /* GATHERING .. FAILED */
	bool controlling;          /* current role (RFC 8445 6.1.1) */
	uint64_t tiebrk;           /* RFC 8445 7.3.1.1 tie-breaker */
	bool relay_only, no_relay; /* diagnostics flags */
	bool allow_loopback;       /* tests: loopback candidates allowed */
	uint32_t relay_wait_ms;    /* direct pairs' head start */
	uint32_t consent_timeout_ms; /* RFC 7675 consent expiry (ours: 15 s) */
	uint32_t connect_timeout_ms; /* checks give up after this */
	char lufrag[ICE_UFRAG_LEN + 1], lpwd[ICE_PWD_LEN + 1];
	char rufrag[ICE_UFRAG_MAX + 1], rpwd[ICE_PWD_MAX + 1];
	bool remote_set;           /* remote description known */

	struct ice_srv srvs[ICE_MAX_SERVERS]; /* copied configuration */
	size_t n_srvs;
	struct sa hosts[ICE_MAX_HOST_ADDRS];  /* host addresses to bind */
	size_t n_hosts;

	struct list bases;         /* struct ice_base (owned) */
	struct list lcands;        /* struct ice_candidate, local (owned) */
	struct list rcands;        /* struct ice_candidate, remote (owned) */
	unsigned n_prflx;          /* remote prflx learnt */
	struct list pairs;         /* struct ice_pair (owned), by priority */
	unsigned n_pairs;
	struct list triggered;     /* pairs queued for a triggered check */
	struct list txns;          /* struct ice_txn (owned) */
	struct ice_early early[ICE_MAX_EARLY];
	unsigned n_early;

	struct stun *stun;         /* libre STUN for gathering transactions */
	struct list gathers;       /* pending STUN binding requests to servers */
	unsigned gather_pending;   /* servers not answered yet */
	struct tls *tls;           /* client TLS context for TURN over TLS */
	char *ldesc;               /* local description (owned) */
	char gerr[256];            /* gathering problems, one line */

	struct ice_pair *nominating; /* controlling: USE-CANDIDATE in flight */
	struct ice_pair *sel;      /* the selected pair (referenced) */
	struct ice_pair *nom_pending; /* controlled: nominated, own check pending */
	enum ice_path_type ptype;  /* sel's path type */
	char sel_local[64], sel_remote[64];
	uint32_t srtt_ms;          /* smoothed RTT of the selected pair */
	uint64_t last_consent;     /* last consent answer (tmr_jiffies) */
	uint64_t t_alloc, t_gathered, t_checks, t_connected, t_first_direct;
	uint64_t t_last_check;     /* last new check sent (Ta pacing) */

	struct ice_path *path;     /* the datagram path (referenced) */
	struct mbuf *txmb;         /* scratch buffer for path sends */
	struct ice_path_stats st;  /* path counters */

	struct tmr tmr_gather;     /* gathering deadline */
	struct tmr tmr_pace;       /* Ta: one new check per tick */
	struct tmr tmr_nominate;   /* controlling: relay wait / direct settle */
	struct tmr tmr_watch;      /* connect timeout, then consent expiry */
	struct tmr tmr_consent;    /* next consent check */
	struct tmr tmr_event;      /* runs the caller's handlers */
	bool ev_gathered, ev_connected, ev_failed; /* handlers still to run */
	int fail_err;              /* for failed() */
	char fail_reason[160];
};

/* --- ice.c ----------------------------------------------------------- */
#define ICE_SA_STRLEN 64
const char *ice_sa_fmt(const struct sa *sa, char *buf, size_t sz); /* "ip:port" */
void ice_fail(struct ice_session *s, int err, const char *fmt, ...);
void ice_base_ready(struct ice_base *b, const struct sa *relayed,
		    const struct sa *mapped);
void ice_base_failed(struct ice_base *b, const char *fmt, ...);
void ice_deliver(struct ice_session *s, struct ice_base *b,
		 const struct sa *src, struct mbuf *mb);
void ice_connected(struct ice_session *s);
const char *ice_ctype_name(enum ice_ctype t);
const char *ice_tr_name(enum ice_tr tr);

/* --- ice_base.c: host sockets and TURN over UDP ----------------------- */
int ice_base_host_alloc(struct ice_base **bp, struct ice_session *s,
			const struct sa *addr, uint16_t lpref);
int ice_base_relay_udp_alloc(struct ice_base **bp, struct ice_session *s,
			     const struct ice_srv *srv, uint16_t lpref);
void ice_base_recv(struct ice_base *b, const struct sa *src, struct mbuf *mb);
void ice_base_turn_handler(int err, uint16_t scode, const char *reason,
			   const struct sa *relay_addr,
			   const struct sa *mapped_addr,
			   const struct stun_msg *msg, void *arg);
int ice_base_alloc(struct ice_base **bp, struct ice_session *s,
		   enum ice_base_kind kind, const struct ice_base_ops *ops,
		   const struct ice_srv *srv, uint16_t lpref);
void ice_base_close(struct ice_base *b);
enum ice_tr ice_base_tr(const struct ice_base *b);
bool ice_base_is_relay(const struct ice_base *b);
extern const struct stun_conf ice_turn_stun_conf;

/* --- turn_tcp.c: TURN over TCP and TLS ----------------------------- */
int ice_base_relay_tcp_alloc(struct ice_base **bp, struct ice_session *s,
			     const struct ice_srv *srv, bool tls,
			     uint16_t lpref);

/* --- ice_desc.c: candidates and the description --------------------- */
uint32_t ice_prio(enum ice_ctype type, uint16_t lpref);
int ice_lcand_add(struct ice_candidate **cp, struct ice_session *s,
		  enum ice_ctype type, struct ice_base *base,
		  const struct sa *addr, const struct sa *rel,
		  const struct sa *server);
int ice_desc_encode(struct ice_session *s);
struct ice_rdesc;
int ice_desc_apply(struct ice_session *s, const char *p, size_t len);
bool ice_addr_usable(const struct sa *sa, bool allow_loopback);
int ice_cand_str(char *buf, size_t sz, enum ice_ctype type, enum ice_tr tr,
		 const struct sa *addr);
int ice_rcand_prflx_alloc(struct ice_candidate **cp, struct ice_session *s,
			  const struct sa *src, uint32_t prio);

/* --- ice_check.c: pairs, checks, nomination, consent ---------------- */
void ice_checks_start(struct ice_session *s);
void ice_pairs_form_base(struct ice_session *s, struct ice_base *b);
void ice_checks_stun(struct ice_session *s, struct ice_base *b,
		     const struct sa *src, struct stun_msg *msg,
		     const struct stun_unknown_attr *ua);
struct ice_pair *ice_pair_for_data(struct ice_session *s,
				   const struct ice_base *b,
				   const struct sa *src);
void ice_checks_stop(struct ice_session *s);
void ice_consent_start(struct ice_session *s);
void ice_base_lost(struct ice_session *s, struct ice_base *b);
enum ice_path_type ice_pair_type(const struct ice_pair *p);
const char *ice_pstate_name(enum ice_pstate st);

#endif
