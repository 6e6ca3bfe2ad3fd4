/* The per-peer ICE session: configuration, credentials, candidate
 * gathering (host sockets, STUN binding requests to every coordinator,
 * TURN allocations over UDP, TCP and TLS), the life cycle from gathering
 * to connected or failed, the caller's handlers, and the datagram path
 * (struct mesh_path) over the selected pair. The checks themselves live in
 * ice_check.c, the transports in ice_base.c and turn_tcp.c. This file must
 * not parse peer input (ice_desc.c does) and never calls a handler from
 * inside a call the caller made or a socket callback (always from a timer,
 * so a handler may free the session). */
#include <ifaddrs.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client/ice_int.h"
#include "common/log.h"

enum {
	/* Gathering waits this long at most for STUN and TURN answers:
	 * RFC 8489 6.2.1 timing (RTO 500 ms) sends 3 requests by then. A
	 * relay that answers later still becomes a local candidate. */
	ICE_GATHER_TIMEOUT_MS = 2000,
	/* Direct pairs' head start before a relayed pair may be nominated. */
	ICE_RELAY_WAIT_MS = 2500,
	/* Dead-path budget (RFC 7675 5.1 allows up to 30 s). */
	ICE_CONSENT_TIMEOUT_MS = 15000,
	ICE_CONNECT_TIMEOUT_MS = 15000,
	/* Path MTUs handed to QUIC (no PMTU discovery yet): RFC 9000 14
	 * requires 1200; a direct pair on 1500-byte links carries 1452
	 * (1500 - 40 IPv6 - 8 UDP); a relayed one leaves room for a Send
	 * indication on the TURN leg (RFC 8656 11.4, 36 bytes). */
	ICE_PATH_MTU_INITIAL = 1200,
	ICE_PATH_MTU_DIRECT = 1452,
	ICE_PATH_MTU_RELAY = 1400,
};

const char *ice_path_type_name(enum ice_path_type t)
{
	switch (t) {
	case ICE_PATH_HOST:      return "host";
	case ICE_PATH_SRFLX:     return "srflx";
	case ICE_PATH_PRFLX:     return "prflx";
	case ICE_PATH_RELAY_UDP: return "relay-udp";
	case ICE_PATH_RELAY_TCP: return "relay-tcp";
	case ICE_PATH_RELAY_TLS: return "relay-tls";
	default:                 return "none";
	}
}

const char *ice_state_name(enum ice_state st)
{
	switch (st) {
	case ICE_ST_GATHERING: return "gathering";
	case ICE_ST_GATHERED:  return "gathered";
	case ICE_ST_CHECKING:  return "checking";
	case ICE_ST_CONNECTED: return "connected";
	case ICE_ST_FAILED:    return "failed";
	}
	return "?";
}

static const char *srv_kind_name(enum ice_server_kind k)
{
	switch (k) {
	case ICE_SRV_STUN:     return "stun";
	case ICE_SRV_TURN_UDP: return "turn-udp";
	case ICE_SRV_TURN_TCP: return "turn-tcp";
	case ICE_SRV_TURN_TLS: return "turn-tls";
	}
	return "?";
}

static void gerr_add(struct ice_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void gerr_add(struct ice_session *s, const char *fmt, ...)
{
	size_t n = strlen(s->gerr);
	va_list ap;

	if (n + 4 >= sizeof(s->gerr))
		return;
	if (n) {
		s->gerr[n++] = ';';
		s->gerr[n++] = ' ';
		s->gerr[n] = '\0';
	}
	va_start(ap, fmt);
	vsnprintf(s->gerr + n, sizeof(s->gerr) - n, fmt, ap);
	va_end(ap);
}

/* --- Handlers, always from a timer ------------------------------------- */

static void event_timeout(void *arg)
{
	struct ice_session *s = arg;

	mem_ref(s);
	if (s->ev_gathered) {
		s->ev_gathered = false;
		if (s->h.gathered && s->state != ICE_ST_FAILED)
			s->h.gathered(s, s->arg);
		if (mem_nrefs(s) == 1)
			goto out;
	}
	if (s->ev_connected) {
		s->ev_connected = false;
		if (s->h.connected && s->state == ICE_ST_CONNECTED)
			s->h.connected(s, s->arg);
		if (mem_nrefs(s) == 1)
			goto out;
	}
	if (s->ev_failed) {
		s->ev_failed = false;
		if (s->h.failed)
			s->h.failed(s, s->fail_err, s->fail_reason, s->arg);
	}
 out:
	mem_deref(s);
}

static void event_kick(struct ice_session *s)
{
	tmr_start(&s->tmr_event, 0, event_timeout, s);
}

void ice_fail(struct ice_session *s, int err, const char *fmt, ...)
{
	enum ice_state prev = s->state;
	va_list ap;

	if (s->state == ICE_ST_FAILED)
		return;
	va_start(ap, fmt);
	vsnprintf(s->fail_reason, sizeof(s->fail_reason), fmt, ap);
	va_end(ap);
	s->fail_err = err ? err : EPROTO;
	s->state = ICE_ST_FAILED;

	ice_checks_stop(s);
	tmr_cancel(&s->tmr_gather);
	list_flush(&s->gathers);
	for (struct le *le = s->bases.head; le; le = le->next)
		ice_base_close(le->data);

	if (prev == ICE_ST_CONNECTED)
		log_warn("ice", "%s: %s path down after %llu ms: %s", s->name,
			 ice_path_type_name(s->ptype),
			 (unsigned long long)(tmr_jiffies() - s->t_connected),
			 s->fail_reason);
	else
		log_warn("ice", "%s: ICE failed while %s: %s", s->name,
			 ice_state_name(prev), s->fail_reason);
	s->ev_failed = true;
	event_kick(s);
}

void ice_connected(struct ice_session *s)
{
	bool relay = s->ptype >= ICE_PATH_RELAY_UDP;

	if (s->path->s == s)
		s->path->mp.mtu = relay ? ICE_PATH_MTU_RELAY : ICE_PATH_MTU_DIRECT;
	log_info("ice", "%s: connected via %s (local %s, remote %s), rtt %u ms, "
		 "%llu ms after start (%llu ms of checks)", s->name,
		 ice_path_type_name(s->ptype), s->sel_local, s->sel_remote,
		 s->srtt_ms, (unsigned long long)(s->t_connected - s->t_alloc),
		 (unsigned long long)(s->t_connected - s->t_checks));
	s->ev_connected = true;
	event_kick(s);
}

/* --- The path ------------------------------------------------------------ */

static int path_send(struct mesh_path *mp, const uint8_t *data, size_t len)
{
	struct ice_path *ip = (struct ice_path *)mp;
	struct ice_session *s = ip->s;
	struct ice_pair *p;
	struct mbuf *mb;
	int err;

	if (!s)
		return ENOTCONN;
	if (s->state == ICE_ST_CONNECTED && s->sel)
		p = s->sel;
	else if (s->state == ICE_ST_CHECKING && s->nom_pending &&
		 s->nom_pending->remote_ok)
		/* controlled: the peer nominated this pair and already sends
		 * on it; our own check of it is one round trip away */
		p = s->nom_pending;
	else
		return ENOTCONN;
	if (!data || !len)
		return EINVAL;
	if (len > ICE_MAX_DGRAM)
		return EMSGSIZE;
	mb = s->txmb;
	mbuf_rewind(mb);
	mb->pos = mb->end = ICE_HEADROOM;
	if (mbuf_write_mem(mb, data, len))
		return ENOMEM;
	mb->pos = ICE_HEADROOM;
	err = p->base->ops->send(p->base, &p->rcand->addr, mb);
	if (err) {
		if (err != EAGAIN && err != EWOULDBLOCK && err != ENOBUFS)
			s->st.tx_errors++;
		return err;
	}
	s->st.tx_pkts++;
	s->st.tx_bytes += len;
	return 0;
}

/* Batches go out in one call only on a host socket (GSO); a relay frames
 * each datagram (ChannelData) and takes them one by one. */
static int path_send_batch(struct mesh_path *mp, const uint8_t *data, size_t len, size_t seg,
			   size_t *sent)
{
	struct ice_path *ip = (struct ice_path *)mp;
	struct ice_session *s = ip->s;
	struct ice_pair *p = s && s->state == ICE_ST_CONNECTED ? s->sel : NULL;
	size_t off = 0;
	int err = 0;

	*sent = 0;
	if (!data || !len || !seg)
		return EINVAL;
	if (p && p->base->ops->send_batch) {
		err = p->base->ops->send_batch(p->base, &p->rcand->addr, data, len, seg, sent);
		if (err && err != EAGAIN && err != EWOULDBLOCK && err != ENOBUFS)
			s->st.tx_errors++;
		s->st.tx_pkts += (*sent + seg - 1) / seg;
		s->st.tx_bytes += *sent;
		return err;
	}
	while (off < len) {
		size_t n = len - off < seg ? len - off : seg;

		err = path_send(mp, data + off, n);
		if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)
			break;
		off += n; /* sent, or lost to a hard error: the rest goes on */
	}
	*sent = off;
	return off == len ? 0 : err;
}

static void path_destructor(void *arg)
{
	(void)arg;
}

void ice_deliver(struct ice_session *s, struct ice_base *b,
		 const struct sa *src, struct mbuf *mb)
{
	struct ice_path *ip = s->path;
	size_t n = mbuf_get_left(mb);

	/* Only from a pair that answered our check or sent an authenticated
	 * one (RFC 8445 7.3.1.3 / 11): nothing else reaches QUIC. */
	if (!ice_pair_for_data(s, b, src)) {
		s->st.rx_dropped++;
		return;
	}
	s->st.rx_pkts++;
	s->st.rx_bytes += n;
	if (!ip->mp.recv)
		return;
	mem_ref(ip);
	ip->mp.recv(mbuf_buf(mb), n, ip->mp.recv_arg);
	mem_deref(ip);
}

/* --- Gathering ------------------------------------------------------------ */

struct gather {
	struct le le;              /* in s->gathers */
	struct ice_session *s;     /* owner */
	struct ice_base *base;     /* host base asking */
	const struct ice_srv *srv; /* STUN server asked */
	struct stun_ctrans *ct;    /* the Binding transaction */
	struct tmr retry;          /* after a send the host refused */
	unsigned sends_refused;
};

/* A Binding request the host itself refused to send (a local packet
 * filter's EPERM, a full buffer) is a lost packet, not an answer: it is
 * asked again, a few times, before the server counts as failed. Without
 * this one dropped first packet left a peer without its srflx candidate. */
enum { GATHER_SEND_RETRIES = 6, GATHER_RETRY_MS = 200 };

static bool send_refused(int err)
{
	return err == EPERM || err == ENOBUFS || err == EAGAIN || err == EWOULDBLOCK;
}

static void gather_destructor(void *arg)
{
	struct gather *g = arg;

	list_unlink(&g->le);
	tmr_cancel(&g->retry);
	mem_deref(g->ct);
}

static int gather_send(struct gather *g);
static void gather_retry(void *arg);

static void gather_finish(struct ice_session *s)
{
	unsigned nh = 0, ns = 0, nr = 0, late = 0;
	int err;

	if (s->state != ICE_ST_GATHERING)
		return;
	tmr_cancel(&s->tmr_gather);
	list_flush(&s->gathers);
	for (struct le *le = s->bases.head; le; le = le->next) {
		struct ice_base *b = le->data;

		if (b->pending) {
			char a[ICE_SA_STRLEN];

			b->pending = false;
			late++;
			gerr_add(s, "%s %s: no allocation yet",
				 srv_kind_name(b->srv->kind),
				 ice_sa_fmt(&b->srv->addr, a, sizeof(a)));
		}
	}
	s->gather_pending = 0;
	s->t_gathered = tmr_jiffies();
	for (struct le *le = s->lcands.head; le; le = le->next) {
		const struct ice_candidate *c = le->data;

		if (c->type == ICE_CT_HOST)
			nh++;
		else if (c->type == ICE_CT_SRFLX)
			ns++;
		else if (c->type == ICE_CT_RELAY)
			nr++;
	}
	if (list_isempty(&s->lcands) && !late) {
		ice_fail(s, ENOENT, "no local candidates%s%s",
			 s->gerr[0] ? ": " : "", s->gerr);
		return;
	}
	err = ice_desc_encode(s);
	if (err) {
		ice_fail(s, err, "local description: %s", strerror(err));
		return;
	}
	s->state = ICE_ST_GATHERED;
	log_info("ice", "%s: gathered %u host, %u srflx, %u relay candidates "
		 "in %llu ms%s%s", s->name, nh, ns, nr,
		 (unsigned long long)(s->t_gathered - s->t_alloc),
		 s->gerr[0] ? "; " : "", s->gerr);
	s->ev_gathered = true;
	event_kick(s);
	if (s->remote_set)
		ice_checks_start(s);
}

static void gather_check(struct ice_session *s)
{
	if (s->state == ICE_ST_GATHERING && s->gather_pending == 0)
		gather_finish(s);
}

static void gather_timeout(void *arg)
{
	gather_finish(arg);
}

static void gather_resp(int err, uint16_t scode, const char *reason,
			const struct stun_msg *msg, void *arg)
{
	struct gather *g = arg;
	struct ice_session *s = g->s;
	char a[ICE_SA_STRLEN];

	if (!err && !scode && msg) {
		struct stun_attr *attr;

		attr = stun_msg_attr(msg, STUN_ATTR_XOR_MAPPED_ADDR);
		if (!attr)
			attr = stun_msg_attr(msg, STUN_ATTR_MAPPED_ADDR);
		if (attr && ice_addr_usable(&attr->v.sa, s->allow_loopback) &&
		    sa_af(&attr->v.sa) == sa_af(&g->base->laddr) &&
		    !sa_cmp(&attr->v.sa, &g->base->laddr, SA_ALL))
			(void)ice_lcand_add(NULL, s, ICE_CT_SRFLX, g->base,
					    &attr->v.sa, &g->base->laddr,
					    &g->srv->addr);
	}
	else if (err && send_refused(err) && g->sends_refused < GATHER_SEND_RETRIES) {
		g->ct = NULL; /* libre ends the transaction after this call */
		g->sends_refused++;
		tmr_start(&g->retry, GATHER_RETRY_MS, gather_retry, g);
		return;
	}
	else if (err) {
		gerr_add(s, "stun %s: %s", ice_sa_fmt(&g->srv->addr, a, sizeof(a)),
			 strerror(err));
	}
	else {
		gerr_add(s, "stun %s: %u %s",
			 ice_sa_fmt(&g->srv->addr, a, sizeof(a)), scode,
			 reason ? reason : "");
	}
	mem_deref(g);
	if (s->gather_pending)
		s->gather_pending--;
	gather_check(s);
}

static void gather_fail(struct gather *g, int err)
{
	struct ice_session *s = g->s;
	char a[ICE_SA_STRLEN];

	gerr_add(s, "stun %s: %s", ice_sa_fmt(&g->srv->addr, a, sizeof(a)), strerror(err));
	mem_deref(g);
	if (s->gather_pending)
		s->gather_pending--;
	gather_check(s);
}

static void gather_retry(void *arg)
{
	struct gather *g = arg;
	int err = gather_send(g);

	if (!err)
		return;
	if (send_refused(err) && g->sends_refused < GATHER_SEND_RETRIES) {
		g->sends_refused++;
		tmr_start(&g->retry, GATHER_RETRY_MS, gather_retry, g);
		return;
	}
	gather_fail(g, err);
}

static int gather_send(struct gather *g)
{
	/* RFC 8489 6.1: a plain Binding request, no credentials */
	return stun_request(&g->ct, g->s->stun, IPPROTO_UDP, g->base->us, &g->srv->addr, 0,
			    STUN_METHOD_BINDING, NULL, 0, false, gather_resp, g, 0);
}

static void stun_ask(struct ice_session *s, struct ice_base *b,
		     const struct ice_srv *srv)
{
	struct gather *g;

	g = mem_zalloc(sizeof(*g), gather_destructor);
	if (!g)
		return;
	g->s = s;
	g->base = b;
	g->srv = srv;
	tmr_init(&g->retry);
	list_append(&s->gathers, &g->le, g);
	s->gather_pending++;
	/* A refused first send is retried like a refused retransmission. */
	gather_retry(g);
}

void ice_base_ready(struct ice_base *b, const struct sa *relayed,
		    const struct sa *mapped)
{
	struct ice_session *s = b->s;
	char a[ICE_SA_STRLEN], m[ICE_SA_STRLEN];
	int err;

	tmr_cancel(&b->tmr);
	if (!ice_addr_usable(relayed, true)) {
		ice_base_failed(b, "unusable relayed address %s",
				ice_sa_fmt(relayed, a, sizeof(a)));
		return;
	}
	b->ready = true;
	b->laddr = *relayed;
	b->mapped = *mapped;
	err = ice_lcand_add(&b->cand, s, ICE_CT_RELAY, b, relayed, mapped,
			    &b->srv->addr);
	if (err) {
		ice_base_failed(b, "relayed candidate: %s", strerror(err));
		return;
	}
	log_debug("ice", "%s: %s relay %s (we are %s)", s->name,
		  srv_kind_name(b->srv->kind), ice_sa_fmt(relayed, a, sizeof(a)),
		  ice_sa_fmt(mapped, m, sizeof(m)));
	if (b->pending) {
		b->pending = false;
		if (s->gather_pending)
			s->gather_pending--;
		gather_check(s);
		return;
	}
	/* Late (after gathering): not in our description, but checks can
	 * still go out from it (the peer learns it as peer-reflexive). */
	if (s->state == ICE_ST_CHECKING)
		ice_pairs_form_base(s, b);
	else if (s->state == ICE_ST_CONNECTED || s->state == ICE_ST_FAILED)
		ice_base_close(b);
}

void ice_base_failed(struct ice_base *b, const char *fmt, ...)
{
	struct ice_session *s = b->s;
	char a[ICE_SA_STRLEN];
	va_list ap;

	if (b->dead)
		return;
	va_start(ap, fmt);
	vsnprintf(b->err, sizeof(b->err), fmt, ap);
	va_end(ap);
	ice_base_close(b);
	if (b->srv) {
		log_info("ice", "%s: %s %s: %s", s->name,
			 srv_kind_name(b->srv->kind),
			 ice_sa_fmt(&b->srv->addr, a, sizeof(a)), b->err);
		if (b->pending || s->state == ICE_ST_GATHERING)
			gerr_add(s, "%s %s: %s", srv_kind_name(b->srv->kind),
				 ice_sa_fmt(&b->srv->addr, a, sizeof(a)),
				 b->err);
	}
	if (b->pending) {
		b->pending = false;
		if (s->gather_pending)
			s->gather_pending--;
		gather_check(s);
	}
	ice_base_lost(s, b);
}

/* Every non-loopback, non-link-local interface address (RFC 8445
 * 5.1.1.1), IPv4 and IPv6, at most ICE_MAX_HOST_ADDRS. */
static void scan_interfaces(struct ice_session *s)
{
	struct ifaddrs *ifa, *i;

	if (getifaddrs(&ifa))
		return;
	for (i = ifa; i && s->n_hosts < ICE_MAX_HOST_ADDRS; i = i->ifa_next) {
		struct sa sa;
		bool dup = false;

		if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) ||
		    (i->ifa_flags & IFF_LOOPBACK))
			continue;
		if (i->ifa_addr->sa_family != AF_INET &&
		    i->ifa_addr->sa_family != AF_INET6)
			continue;
		if (sa_set_sa(&sa, i->ifa_addr))
			continue;
		sa_set_port(&sa, 9);
		if (!ice_addr_usable(&sa, false))
			continue;
		sa_set_port(&sa, 0);
		for (size_t k = 0; k < s->n_hosts; k++)
			dup |= sa_cmp(&s->hosts[k], &sa, SA_ADDR);
		if (!dup)
			s->hosts[s->n_hosts++] = sa;
	}
	freeifaddrs(ifa);
}

static uint16_t relay_lpref(const struct ice_srv *srv)
{
	/* RFC 8445 5.1.2.1 local preference: TURN over UDP before TCP
	 * before TLS, then the order the coordinators listed them in. */
	unsigned tier = srv->kind == ICE_SRV_TURN_UDP ? 0
		      : srv->kind == ICE_SRV_TURN_TCP ? 1 : 2;

	return (uint16_t)(65535 - tier * 8192 - srv->idx);
}

static int gather_start(struct ice_session *s)
{
	char a[ICE_SA_STRLEN];
	int err;

	if (!s->relay_only) {
		for (size_t i = 0; i < s->n_hosts; i++) {
			struct ice_base *b;

			err = ice_base_host_alloc(&b, s, &s->hosts[i],
						  (uint16_t)(65535 - i));
			if (err) {
				log_warn("ice", "%s: no socket on %s: %s",
					 s->name, ice_sa_fmt(&s->hosts[i], a,
							     sizeof(a)),
					 strerror(err));
				continue;
			}
			(void)ice_lcand_add(&b->cand, s, ICE_CT_HOST, b,
					    &b->laddr, NULL, NULL);
		}
		for (size_t k = 0; k < s->n_srvs; k++) {
			const struct ice_srv *srv = &s->srvs[k];

			if (srv->kind != ICE_SRV_STUN)
				continue;
			for (struct le *le = s->bases.head; le; le = le->next) {
				struct ice_base *b = le->data;

				if (b->kind == ICE_BASE_HOST && b->us &&
				    sa_af(&b->laddr) == sa_af(&srv->addr))
					stun_ask(s, b, srv);
			}
		}
	}
	if (!s->no_relay) {
		for (size_t k = 0; k < s->n_srvs; k++) {
			const struct ice_srv *srv = &s->srvs[k];
			struct ice_base *b = NULL;

			switch (srv->kind) {
			case ICE_SRV_TURN_UDP:
				err = ice_base_relay_udp_alloc(&b, s, srv,
							       relay_lpref(srv));
				break;
			case ICE_SRV_TURN_TCP:
			case ICE_SRV_TURN_TLS:
				err = ice_base_relay_tcp_alloc(&b, s, srv,
					srv->kind == ICE_SRV_TURN_TLS,
					relay_lpref(srv));
				break;
			default:
				continue;
			}
			if (err) {
				gerr_add(s, "%s %s: %s", srv_kind_name(srv->kind),
					 ice_sa_fmt(&srv->addr, a, sizeof(a)),
					 strerror(err));
				continue;
			}
			b->pending = true;
			s->gather_pending++;
		}
	}
	tmr_start(&s->tmr_gather, s->gather_pending ? ICE_GATHER_TIMEOUT_MS : 0,
		  gather_timeout, s);
	return 0;
}

/* --- Session ------------------------------------------------------------- */

static void session_destructor(void *arg)
{
	struct ice_session *s = arg;

	tmr_cancel(&s->tmr_gather);
	tmr_cancel(&s->tmr_event);
	ice_checks_stop(s);
	s->sel = mem_deref(s->sel);
	list_flush(&s->pairs);
	list_flush(&s->gathers);
	list_flush(&s->bases);
	list_flush(&s->lcands);
	list_flush(&s->rcands);
	mem_deref(s->stun);
	mem_deref(s->tls);
	mem_deref(s->ldesc);
	mem_deref(s->txmb);
	for (size_t i = 0; i < s->n_srvs; i++) {
		mem_deref(s->srvs[i].user);
		mem_deref(s->srvs[i].pass);
	}
	if (s->path) {
		if (s->path->s == s)
			s->path->s = NULL;
		mem_deref(s->path);
	}
}

/* "IP:PORT" or "[IPv6]:PORT", port 1..65535. */
static int parse_hostport(const char *str, struct sa *sa)
{
	const char *ip, *port, *end;
	char buf[64];
	size_t iplen, n;
	unsigned long v = 0;

	if (!str)
		return EINVAL;
	n = strlen(str);
	if (n < 3 || n > 70)
		return EINVAL;
	end = str + n;
	if (str[0] == '[') {
		const char *close = memchr(str, ']', n);

		if (!close || close + 1 >= end || close[1] != ':')
			return EINVAL;
		ip = str + 1;
		iplen = (size_t)(close - ip);
		port = close + 2;
	}
	else {
		const char *colon = strchr(str, ':');

		if (!colon || strchr(colon + 1, ':'))
			return EINVAL;
		ip = str;
		iplen = (size_t)(colon - str);
		port = colon + 1;
	}
	if (!iplen || iplen >= sizeof(buf) || port >= end || end - port > 5)
		return EINVAL;
	for (const char *p = port; p < end; p++) {
		if (*p < '0' || *p > '9')
			return EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return EINVAL;
	memcpy(buf, ip, iplen);
	buf[iplen] = '\0';
	return sa_set_str(sa, buf, (uint16_t)v) ? EINVAL : 0;
}

/* RFC 8839 5.4 ice-chars, RFC 8445 5.3 lengths (ICE_UFRAG_LEN/PWD_LEN). */
static void rand_ice(char *out, size_t n)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint8_t r[64];

	rand_bytes(r, n);
	for (size_t i = 0; i < n; i++)
		out[i] = al[r[i] & 63];
	out[n] = '\0';
}

int ice_session_alloc(struct ice_session **sp, const struct ice_config *cfg,
		      const struct ice_handlers *h, void *arg)
{
	struct ice_session *s;
	unsigned kidx[4] = {0, 0, 0, 0};
	bool need_tls = false;
	int err = 0;

	if (!sp || !cfg || !h)
		return EINVAL;
	if (cfg->relay_only && cfg->no_relay)
		return EINVAL;
	if (cfg->n_servers > ICE_MAX_SERVERS || (cfg->n_servers && !cfg->servers))
		return EINVAL;
	if (cfg->n_host_addrs > ICE_MAX_HOST_ADDRS ||
	    (cfg->n_host_addrs && !cfg->host_addrs))
		return EINVAL;

	s = mem_zalloc(sizeof(*s), session_destructor);
	if (!s)
		return ENOMEM;
	s->h = *h;
	s->arg = arg;
	snprintf(s->name, sizeof(s->name), "%s", cfg->name ? cfg->name : "peer");
	s->state = ICE_ST_GATHERING;
	s->controlling = cfg->controlling;
	s->tiebrk = rand_u64();
	s->relay_only = cfg->relay_only;
	s->no_relay = cfg->no_relay;
	s->allow_loopback = cfg->allow_loopback;
	s->relay_wait_ms = cfg->relay_wait_ms ? cfg->relay_wait_ms : ICE_RELAY_WAIT_MS;
	s->consent_timeout_ms = cfg->consent_timeout_ms ? cfg->consent_timeout_ms
							: ICE_CONSENT_TIMEOUT_MS;
	s->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
							: ICE_CONNECT_TIMEOUT_MS;
	rand_ice(s->lufrag, ICE_UFRAG_LEN);
	rand_ice(s->lpwd, ICE_PWD_LEN);
	tmr_init(&s->tmr_gather);
	tmr_init(&s->tmr_pace);
	tmr_init(&s->tmr_nominate);
	tmr_init(&s->tmr_watch);
	tmr_init(&s->tmr_consent);
	tmr_init(&s->tmr_event);
	s->t_alloc = tmr_jiffies();

	for (size_t i = 0; i < cfg->n_servers; i++) {
		const struct ice_server *in = &cfg->servers[i];
		struct ice_srv *srv = &s->srvs[s->n_srvs];

		/* The lists come from the coordinators: one bad entry is
		 * skipped (and reported), it does not stop the session. */
		if ((unsigned)in->kind > ICE_SRV_TURN_TLS ||
		    parse_hostport(in->addr, &srv->addr)) {
			gerr_add(s, "server '%.64s': not IP:PORT, skipped",
				 in->addr ? in->addr : "");
			continue;
		}
		srv->kind = in->kind;
		{
			bool dup = false;

			for (size_t k = 0; k < s->n_srvs; k++)
				dup |= s->srvs[k].kind == srv->kind &&
				       sa_cmp(&s->srvs[k].addr, &srv->addr,
					      SA_ALL);
			if (dup)
				continue; /* listed by two coordinators */
		}
		if (in->kind != ICE_SRV_STUN) {
			if (!in->username || !in->password ||
			    !in->username[0] || strlen(in->username) > 256 ||
			    strlen(in->password) > 256) {
				gerr_add(s, "%s %s: no usable credential, skipped",
					 srv_kind_name(in->kind), in->addr);
				continue;
			}
			err = str_dup(&srv->user, in->username);
			err |= str_dup(&srv->pass, in->password);
			if (err)
				goto out;
		}
		srv->idx = kidx[in->kind]++;
		need_tls |= in->kind == ICE_SRV_TURN_TLS;
		s->n_srvs++;
	}

	if (cfg->n_host_addrs) {
		for (size_t i = 0; i < cfg->n_host_addrs; i++) {
			struct sa sa;

			if (!cfg->host_addrs[i] ||
			    sa_set_str(&sa, cfg->host_addrs[i], 9) ||
			    !ice_addr_usable(&sa, s->allow_loopback)) {
				err = EINVAL;
				goto out;
			}
			sa_set_port(&sa, 0);
			s->hosts[s->n_hosts++] = sa;
		}
	}
	else {
		scan_interfaces(s);
	}

	if (cfg->path) {
		/* bound to this session only once it is fully made (below) */
		if (cfg->path->send != path_send) {
			err = EINVAL;
			goto out;
		}
		s->path = mem_ref((struct ice_path *)cfg->path);
	}
	else {
		s->path = mem_zalloc(sizeof(*s->path), path_destructor);
		if (!s->path) {
			err = ENOMEM;
			goto out;
		}
		s->path->mp.send = path_send;
		s->path->mp.send_batch = path_send_batch;
		s->path->mp.mtu = ICE_PATH_MTU_INITIAL;
		s->path->s = s;
	}

	s->txmb = mbuf_alloc(ICE_HEADROOM + 2048);
	if (!s->txmb) {
		err = ENOMEM;
		goto out;
	}
	err = stun_alloc(&s->stun, NULL, NULL, NULL);
	if (err)
		goto out;
	if (need_tls && !s->no_relay) {
		err = tls_alloc(&s->tls, TLS_METHOD_SSLV23, NULL, NULL);
		if (err)
			goto out;
	}
	if (s->gerr[0])
		log_warn("ice", "%s: %s", s->name, s->gerr);
	err = gather_start(s);
	if (!err)
		s->path->s = s;

 out:
	if (err)
		mem_deref(s);
	else
		*sp = s;
	return err;
}

const char *ice_session_local_desc(const struct ice_session *s)
{
	return s && s->state != ICE_ST_GATHERING ? s->ldesc : NULL;
}

int ice_session_set_remote(struct ice_session *s, const char *desc, size_t len)
{
	int err;

	if (!s || !desc)
		return EINVAL;
	if (s->remote_set)
		return EALREADY;
	if (s->state == ICE_ST_FAILED)
		return ENOTCONN;
	err = ice_desc_apply(s, desc, len);
	if (err)
		return err == ENOMEM ? ENOMEM : EBADMSG;
	s->remote_set = true;
	if (s->state == ICE_ST_GATHERED)
		ice_checks_start(s);
	return 0;
}

struct mesh_path *ice_session_path(struct ice_session *s)
{
	return s ? &s->path->mp : NULL;
}

enum ice_state ice_session_state(const struct ice_session *s)
{
	return s ? s->state : ICE_ST_FAILED;
}

enum ice_path_type ice_session_path_type(const struct ice_session *s)
{
	return s && s->sel ? s->ptype : ICE_PATH_NONE;
}

bool ice_session_controlling(const struct ice_session *s)
{
	return s && s->controlling;
}

const char *ice_session_local_cand(const struct ice_session *s)
{
	return s && s->sel ? s->sel_local : "";
}

const char *ice_session_remote_cand(const struct ice_session *s)
{
	return s && s->sel ? s->sel_remote : "";
}

uint32_t ice_session_rtt_ms(const struct ice_session *s)
{
	return s ? s->srtt_ms : 0;
}

void ice_session_times(const struct ice_session *s, struct ice_times *t)
{
	if (!t)
		return;
	memset(t, 0, sizeof(*t));
	if (!s)
		return;
	if (s->t_gathered)
		t->gathered_ms = s->t_gathered - s->t_alloc;
	if (s->t_checks)
		t->checks_ms = s->t_checks - s->t_alloc;
	if (s->t_connected)
		t->connected_ms = s->t_connected - s->t_alloc;
}

void ice_session_path_stats(const struct ice_session *s,
			    struct ice_path_stats *st)
{
	if (!st)
		return;
	if (!s) {
		memset(st, 0, sizeof(*st));
		return;
	}
	*st = s->st;
}

size_t ice_session_pairs(const struct ice_session *s, struct ice_pair_info *v,
			 size_t max)
{
	size_t n = 0;

	if (!s)
		return 0;
	for (struct le *le = s->pairs.head; le; le = le->next, n++) {
		const struct ice_pair *p = le->data;
		struct ice_pair_info *pi;

		if (!v || n >= max)
			continue;
		pi = &v[n];
		memset(pi, 0, sizeof(*pi));
		if (p->state == ICE_PS_SUCCEEDED)
			ice_cand_str(pi->local, sizeof(pi->local), p->ltype,
				     ice_base_tr(p->base),
				     p->ltype == ICE_CT_RELAY ? &p->base->laddr
							      : &p->mapped);
		else
			ice_cand_str(pi->local, sizeof(pi->local),
				     p->lcand->type, p->lcand->tr,
				     &p->lcand->addr);
		ice_cand_str(pi->remote, sizeof(pi->remote), p->rcand->type,
			     p->rcand->tr, &p->rcand->addr);
		pi->type = ice_pair_type(p);
		pi->state = ice_pstate_name(p->state);
		str_ncpy(pi->error, p->err, sizeof(pi->error));
		pi->checks = p->checks;
		pi->rtt_ms = p->rtt_ms;
		pi->nominated = p->nominated;
		pi->selected = p == s->sel;
	}
	return n;
}

const char *ice_session_gather_errors(const struct ice_session *s)
{
	return s ? s->gerr : "";
}
