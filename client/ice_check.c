/* ICE connectivity checks (RFC 8445 6.1.2-8, full agent, one component,
 * regular nomination) and consent freshness (RFC 7675): the candidate
 * pairs, the paced Binding requests with their retransmissions, the answers
 * to the peer's checks, peer-reflexive candidates, the controlling side's
 * choice (any direct pair before a relayed one, relays after a bounded
 * wait), selection, and the consent checks that declare the selected pair
 * dead. Libre's icem is not used: in libre 1.1 it takes one TURN client per
 * component, UDP only, concludes only when every pair has finished, never
 * pairs peer-reflexive candidates it learns, and lets the controlled side
 * pick a pair by itself (docs/ice.md). This file sends only through
 * struct ice_base_ops and never touches sockets. */
#include <string.h>

#include "client/ice_int.h"
#include "common/log.h"

enum {
	/* RFC 8445 14.2: Ta, the pacing of new checks (default 50 ms). */
	ICE_TA_MS = 50,
	/* RFC 8445 14.3: RTO = MAX(500 ms, Ta * (Waiting + In-Progress)) */
	ICE_CHECK_RTO_MIN_MS = 500,
	/* RFC 8489 6.2.1 doubles the RTO per retransmission; we cap the
	 * doubling so a pair's fate is known within ~9.5 s. */
	ICE_CHECK_RTO_MAX_MS = 1600,
	/* RFC 8489 6.2.1: Rc, requests sent before giving up (default 7). */
	ICE_CHECK_MAX_TX = 7,
	/* RFC 7675 5.1: a consent check every 5 s on average, each interval
	 * randomized to 0.8..1.2 of it. */
	ICE_CONSENT_INTERVAL_MS = 5000,
	/* RFC 7675 5.1 uses STUN retransmissions (RFC 8489 6.2.1, RTO 500 ms)
	 * for each consent check; 4 sends (0, 0.5, 1.5, 3.1 s) fit in one
	 * interval, and at most 2 checks are outstanding. */
	ICE_CONSENT_RTO_MS = 500,
	ICE_CONSENT_MAX_TX = 4,
	ICE_CONSENT_MAX_OUTSTANDING = 2,
	/* When the checks gave no RTT (retransmitted), the first consent
	 * check goes out this soon to measure one. */
	ICE_FIRST_CONSENT_MS = 250,
	/* Once a direct pair succeeded, higher-priority direct pairs still
	 * running get this long before the best valid one is nominated. */
	ICE_DIRECT_SETTLE_MS = 100,
};

static void pace_kick(struct ice_session *s);
static void nominate_eval(struct ice_session *s);
static void select_pair(struct ice_session *s, struct ice_pair *p);
static void check_all_failed(struct ice_session *s);

const char *ice_pstate_name(enum ice_pstate st)
{
	switch (st) {
	case ICE_PS_WAITING:    return "waiting";
	case ICE_PS_INPROGRESS: return "in-progress";
	case ICE_PS_SUCCEEDED:  return "succeeded";
	case ICE_PS_FAILED:     return "failed";
	case ICE_PS_CANCELLED:  return "cancelled";
	}
	return "?";
}

static enum ice_path_type tr_ptype(enum ice_tr tr)
{
	switch (tr) {
	case ICE_TR_TCP: return ICE_PATH_RELAY_TCP;
	case ICE_TR_TLS: return ICE_PATH_RELAY_TLS;
	default:         return ICE_PATH_RELAY_UDP;
	}
}

static enum ice_path_type ct_ptype(enum ice_ctype t, enum ice_tr tr)
{
	switch (t) {
	case ICE_CT_HOST:  return ICE_PATH_HOST;
	case ICE_CT_SRFLX: return ICE_PATH_SRFLX;
	case ICE_CT_PRFLX: return ICE_PATH_PRFLX;
	default:           return tr_ptype(tr);
	}
}

/* The path a pair makes: the less direct of its two ends, in the order
 * host < srflx < prflx < relay-udp < relay-tcp < relay-tls. */
enum ice_path_type ice_pair_type(const struct ice_pair *p)
{
	enum ice_path_type l, r;

	if (ice_base_is_relay(p->base))
		l = tr_ptype(ice_base_tr(p->base));
	else
		l = ct_ptype(p->state == ICE_PS_SUCCEEDED ? p->ltype
							  : ICE_CT_HOST,
			     ICE_TR_NONE);
	r = ct_ptype(p->rcand->type, p->rcand->tr);
	return l > r ? l : r;
}

/* --- Pairs ------------------------------------------------------------ */

static void pair_destructor(void *arg)
{
	struct ice_pair *p = arg;

	list_unlink(&p->le);
	list_unlink(&p->tle);
	mem_deref(p->base);
	mem_deref(p->lcand);
	mem_deref(p->rcand);
}

/* RFC 8445 6.1.2.3: 2^32*MIN(G,D) + 2*MAX(G,D) + (G>D?1:0), G being the
 * controlling agent's candidate priority. */
static uint64_t pair_prio(bool controlling, uint32_t lp, uint32_t rp)
{
	uint64_t g = controlling ? lp : rp, d = controlling ? rp : lp;
	uint64_t mn = g < d ? g : d, mx = g < d ? d : g;

	return (mn << 32) + 2 * mx + (g > d ? 1 : 0);
}

static bool pair_sort_h(struct le *le1, struct le *le2, void *arg)
{
	const struct ice_pair *a = le1->data, *b = le2->data;
	(void)arg;
	return a->prio >= b->prio;
}

static void pairs_reprioritize(struct ice_session *s)
{
	for (struct le *le = s->pairs.head; le; le = le->next) {
		struct ice_pair *p = le->data;

		p->prio = pair_prio(s->controlling, p->lcand->prio,
				    p->rcand->prio);
	}
	list_sort(&s->pairs, pair_sort_h, NULL);
}

static struct ice_pair *pair_find(const struct ice_session *s,
				  const struct ice_base *b,
				  const struct sa *raddr)
{
	for (struct le *le = s->pairs.head; le; le = le->next) {
		struct ice_pair *p = le->data;

		if (p->base == b && sa_cmp(&p->rcand->addr, raddr, SA_ALL))
			return p;
	}
	return NULL;
}

/* learnt: the peer's own check just came from rc over b. */
static struct ice_pair *pair_add(struct ice_session *s, struct ice_base *b,
				 struct ice_candidate *rc, bool learnt)
{
	struct ice_pair *p;

	if (!b->cand || b->dead || !b->ready)
		return NULL;
	if (sa_af(&b->cand->addr) != sa_af(&rc->addr))
		return NULL;
	if (s->no_relay && rc->type == ICE_CT_RELAY)
		return NULL;
	p = pair_find(s, b, &rc->addr);
	if (p)
		return p;
	/* From a relayed base, a peer's host address is checked only once
	 * the peer's own check came from it. A TURN server rarely reaches a
	 * host address (it is usually behind the peer's NAT), and coturn
	 * tears the whole allocation down when sending to a peer fails
	 * (ENETUNREACH): one such check would cost us the relay. */
	if (ice_base_is_relay(b) && rc->type == ICE_CT_HOST && !learnt)
		return NULL;
	if (s->n_pairs >= ICE_MAX_PAIRS)
		return NULL;

	p = mem_zalloc(sizeof(*p), pair_destructor);
	if (!p)
		return NULL;
	p->s = s;
	p->base = mem_ref(b);
	p->lcand = mem_ref(b->cand);
	p->rcand = mem_ref(rc);
	p->state = ICE_PS_WAITING;
	p->direct = !ice_base_is_relay(b) && rc->type != ICE_CT_RELAY;
	p->ltype = b->cand->type;
	p->prio = pair_prio(s->controlling, p->lcand->prio, rc->prio);
	list_append(&s->pairs, &p->le, p);
	list_sort(&s->pairs, pair_sort_h, NULL);
	s->n_pairs++;

	/* RFC 8656 9: a relayed candidate needs a permission for the peer's
	 * IP before anything passes either way (RFC 8445 5.1.1.2). */
	if (b->ops->permit)
		b->ops->permit(b, &rc->addr);
	return p;
}

static void trigger(struct ice_pair *p)
{
	struct ice_session *s = p->s;

	p->state = ICE_PS_WAITING;
	if (!p->tle.list)
		list_append(&s->triggered, &p->tle, p);
	pace_kick(s);
}

void ice_pairs_form_base(struct ice_session *s, struct ice_base *b)
{
	for (struct le *le = s->rcands.head; le; le = le->next)
		(void)pair_add(s, b, le->data, false);
	pace_kick(s);
}

/* --- Transactions ----------------------------------------------------- */

static void txn_destructor(void *arg)
{
	struct ice_txn *t = arg;

	tmr_cancel(&t->tmr);
	list_unlink(&t->le);
	if (t->pair && t->pair->txn == t)
		t->pair->txn = NULL;
	mem_deref(t->pair);
	mem_deref(t->mb);
}

static struct ice_txn *txn_find(const struct ice_session *s,
				const uint8_t *tid)
{
	for (struct le *le = s->txns.head; le; le = le->next) {
		struct ice_txn *t = le->data;

		if (!memcmp(t->tid, tid, STUN_TID_SIZE))
			return t;
	}
	return NULL;
}

static int txn_send(struct ice_txn *t)
{
	struct ice_pair *p = t->pair;
	struct ice_base *b = p->base;
	int err;

	t->mb->pos = ICE_HEADROOM;
	err = b->ops->send(b, &p->rcand->addr, t->mb);
	t->tx++;
	if (log_get_level() >= LOG_LVL_DEBUG) {
		char l[ICE_SA_STRLEN], r[ICE_SA_STRLEN];

		log_debug("ice", "%s: %s #%u %s -> %s%s%s", p->s->name,
			  t->consent ? "consent" : t->use_cand ? "nominate"
							       : "check",
			  t->tx, ice_sa_fmt(&b->laddr, l, sizeof(l)),
			  ice_sa_fmt(&p->rcand->addr, r, sizeof(r)),
			  err ? ": " : "", err ? strerror(err) : "");
	}
	if (!t->consent)
		p->checks++;
	if (!t->consent)
		p->send_err = err;
	return err;
}

static void pair_fail(struct ice_pair *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void txn_timeout(void *arg)
{
	struct ice_txn *t = arg;
	struct ice_pair *p = t->pair;

	if (t->tx >= t->max_tx) {
		if (t->consent) {
			mem_deref(t);
			return;
		}
		mem_ref(p);
		mem_deref(t);
		if (p->send_err)
			pair_fail(p, "no answer to %u checks (send: %s)",
				  p->checks, strerror(p->send_err));
		else
			pair_fail(p, "no answer to %u checks", p->checks);
		mem_deref(p);
		return;
	}
	(void)txn_send(t);
	t->rto = t->rto * 2 > ICE_CHECK_RTO_MAX_MS ? ICE_CHECK_RTO_MAX_MS
						   : t->rto * 2;
	tmr_start(&t->tmr, t->rto, txn_timeout, t);
}

static uint32_t check_rto(const struct ice_session *s)
{
	uint32_t n = 0, rto;

	for (struct le *le = s->pairs.head; le; le = le->next) {
		const struct ice_pair *p = le->data;

		if (p->state == ICE_PS_WAITING || p->state == ICE_PS_INPROGRESS)
			n++;
	}
	rto = ICE_TA_MS * n;
	if (rto < ICE_CHECK_RTO_MIN_MS)
		rto = ICE_CHECK_RTO_MIN_MS;
	if (rto > ICE_CHECK_RTO_MAX_MS)
		rto = ICE_CHECK_RTO_MAX_MS;
	return rto;
}

/* A Binding request on p (RFC 8445 7.2.2 / 7.1.1): short-term credentials
 * (USERNAME "rufrag:lufrag", MESSAGE-INTEGRITY with the peer's password),
 * PRIORITY of a peer-reflexive candidate of this base, the role attribute
 * with our tie-breaker, USE-CANDIDATE when nominating; FINGERPRINT. */
static int txn_alloc(struct ice_txn **tp, struct ice_pair *p, bool use_cand,
		     bool consent)
{
	struct ice_session *s = p->s;
	struct ice_txn *t;
	char user[ICE_UFRAG_MAX + ICE_UFRAG_LEN + 2];
	uint32_t prio = ice_prio(ICE_CT_PRFLX, p->base->lpref);
	bool uc = true;
	int err;

	t = mem_zalloc(sizeof(*t), txn_destructor);
	if (!t)
		return ENOMEM;
	t->pair = mem_ref(p);
	t->use_cand = use_cand;
	t->consent = consent;
	t->controlling = s->controlling;
	t->max_tx = consent ? ICE_CONSENT_MAX_TX : ICE_CHECK_MAX_TX;
	t->rto = consent ? ICE_CONSENT_RTO_MS : check_rto(s);
	rand_bytes(t->tid, sizeof(t->tid));
	tmr_init(&t->tmr);
	t->mb = mbuf_alloc(ICE_HEADROOM + 192);
	if (!t->mb) {
		err = ENOMEM;
		goto out;
	}
	t->mb->pos = ICE_HEADROOM;
	snprintf(user, sizeof(user), "%s:%s", s->rufrag, s->lufrag);
	err = stun_msg_encode(t->mb, STUN_METHOD_BINDING, STUN_CLASS_REQUEST,
			      t->tid, NULL, (const uint8_t *)s->rpwd,
			      strlen(s->rpwd), true, 0x00, 4,
			      STUN_ATTR_USERNAME, user,
			      STUN_ATTR_PRIORITY, &prio,
			      s->controlling ? STUN_ATTR_CONTROLLING
					     : STUN_ATTR_CONTROLLED,
			      &s->tiebrk,
			      STUN_ATTR_USE_CAND,
			      use_cand ? (const void *)&uc : (const void *)NULL);
	if (err)
		goto out;
	list_append(&s->txns, &t->le, t);
	if (!consent) {
		p->txn = t;
		p->state = ICE_PS_INPROGRESS;
	}
	t->t0 = tmr_jiffies();
	(void)txn_send(t);
	tmr_start(&t->tmr, t->rto, txn_timeout, t);

 out:
	if (err)
		mem_deref(t);
	else if (tp)
		*tp = t;
	return err;
}

static void txns_cancel_checks(struct ice_session *s)
{
	struct le *le = s->txns.head;

	while (le) {
		struct ice_txn *t = le->data;

		le = le->next;
		if (!t->consent)
			mem_deref(t);
	}
}

/* --- Pacing ----------------------------------------------------------- */

static void pace_timeout(void *arg)
{
	struct ice_session *s = arg;
	struct ice_pair *p = NULL;

	if (s->state != ICE_ST_CHECKING)
		return;

	/* RFC 8445 6.1.4.2: the triggered-check queue first, then the
	 * highest-priority Waiting pair (all pairs start Waiting: with one
	 * component and one data stream there is nothing to unfreeze). */
	while (s->triggered.head && !p) {
		p = list_ledata(s->triggered.head);
		list_unlink(&p->tle);
		if (p->state != ICE_PS_WAITING)
			p = NULL;
	}
	if (!p) {
		for (struct le *le = s->pairs.head; le; le = le->next) {
			struct ice_pair *q = le->data;

			if (q->state == ICE_PS_WAITING) {
				p = q;
				break;
			}
		}
	}
	if (!p)
		return; /* idle until pace_kick */

	if (p->txn)
		mem_deref(p->txn);
	/* a pair being nominated keeps its USE-CANDIDATE when re-checked */
	(void)txn_alloc(NULL, p, p == s->nominating, false);
	s->t_last_check = tmr_jiffies();
	tmr_start(&s->tmr_pace, ICE_TA_MS, pace_timeout, s);
}

static void pace_kick(struct ice_session *s)
{
	uint64_t now = tmr_jiffies(), wait = 0;

	if (s->state != ICE_ST_CHECKING || tmr_isrunning(&s->tmr_pace))
		return;
	if (now - s->t_last_check < ICE_TA_MS)
		wait = ICE_TA_MS - (now - s->t_last_check);
	tmr_start(&s->tmr_pace, wait, pace_timeout, s);
}

/* --- Outcomes ---------------------------------------------------------- */

static void pair_fail(struct ice_pair *p, const char *fmt, ...)
{
	struct ice_session *s = p->s;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	p->state = ICE_PS_FAILED;
	if (p->txn)
		mem_deref(p->txn);
	list_unlink(&p->tle);
	if (s->nominating == p)
		s->nominating = NULL;
	if (s->nom_pending == p)
		s->nom_pending = NULL;
	if (s->state != ICE_ST_CHECKING)
		return;
	if (s->controlling)
		nominate_eval(s);
	check_all_failed(s);
}

static enum ice_ctype local_type(const struct ice_session *s,
				 const struct ice_pair *p,
				 const struct sa *mapped)
{
	if (ice_base_is_relay(p->base))
		return ICE_CT_RELAY;
	if (sa_cmp(mapped, &p->base->laddr, SA_ALL))
		return ICE_CT_HOST;
	for (struct le *le = s->lcands.head; le; le = le->next) {
		const struct ice_candidate *c = le->data;

		if (c->base == p->base && c->type == ICE_CT_SRFLX &&
		    sa_cmp(&c->addr, mapped, SA_ALL))
			return ICE_CT_SRFLX;
	}
	/* RFC 8445 7.2.5.3.1: an address we did not know: peer-reflexive */
	return ICE_CT_PRFLX;
}

static void pair_succeeded(struct ice_pair *p, const struct sa *mapped,
			   uint32_t rtt, bool nominating)
{
	struct ice_session *s = p->s;

	p->state = ICE_PS_SUCCEEDED;
	p->mapped = *mapped;
	p->ltype = local_type(s, p, mapped);
	p->err[0] = '\0';
	if (rtt)
		p->rtt_ms = rtt;
	list_unlink(&p->tle);
	if (p->direct && !s->t_first_direct)
		s->t_first_direct = tmr_jiffies();
	if (s->state != ICE_ST_CHECKING)
		return;

	if (nominating && s->controlling) {
		/* RFC 8445 8.1.1: the USE-CANDIDATE check succeeded */
		s->nominating = NULL;
		select_pair(s, p);
		return;
	}
	if (!s->controlling && p->nominate_on_success) {
		/* RFC 8445 7.3.1.5 */
		select_pair(s, p);
		return;
	}
	if (s->controlling)
		nominate_eval(s);
}

static void switch_role(struct ice_session *s, bool controlling)
{
	if (s->controlling == controlling)
		return;
	s->controlling = controlling;
	log_info("ice", "%s: role conflict: now %s", s->name,
		 s->controlling ? "controlling" : "controlled");
	pairs_reprioritize(s);
}

/* --- Nomination (controlling side) ------------------------------------ */

static void nominate(struct ice_session *s, struct ice_pair *p)
{
	s->nominating = p;
	if (p->txn)
		mem_deref(p->txn);
	if (txn_alloc(NULL, p, true, false)) {
		s->nominating = NULL;
		return;
	}
	log_debug("ice", "%s: nominating %s pair", s->name,
		  ice_path_type_name(ice_pair_type(p)));
}

static void nominate_timeout(void *arg)
{
	nominate_eval(arg);
}

/* Direct first: any valid direct pair wins (after a short settle for
 * better direct pairs still running); a relayed pair is nominated only
 * when no direct pair is left running or the relay wait is over. */
static void nominate_eval(struct ice_session *s)
{
	struct ice_pair *best_direct = NULL, *best = NULL;
	bool direct_running = false, better_direct_running = false;
	uint64_t now = tmr_jiffies();

	if (!s->controlling || s->state != ICE_ST_CHECKING || s->nominating)
		return;

	for (struct le *le = s->pairs.head; le; le = le->next) {
		struct ice_pair *p = le->data;
		bool running = p->state == ICE_PS_WAITING ||
			       p->state == ICE_PS_INPROGRESS;

		if (p->state == ICE_PS_SUCCEEDED) {
			if (!best)
				best = p;
			if (p->direct && !best_direct)
				best_direct = p;
		}
		if (p->direct && running) {
			direct_running = true;
			if (!best_direct)
				better_direct_running = true;
		}
	}

	if (best_direct) {
		uint64_t waited = now - s->t_first_direct;

		if (!better_direct_running || waited >= ICE_DIRECT_SETTLE_MS)
			nominate(s, best_direct);
		else
			tmr_start(&s->tmr_nominate,
				  ICE_DIRECT_SETTLE_MS - waited,
				  nominate_timeout, s);
		return;
	}
	if (!best)
		return;
	if (!direct_running || now - s->t_checks >= s->relay_wait_ms)
		nominate(s, best);
	else
		tmr_start(&s->tmr_nominate,
			  s->relay_wait_ms - (now - s->t_checks),
			  nominate_timeout, s);
}

static void summarize(const struct ice_session *s, char *buf, size_t sz)
{
	unsigned n = 0, ok = 0, failed = 0, running = 0;
	const char *first = "";

	for (struct le *le = s->pairs.head; le; le = le->next) {
		const struct ice_pair *p = le->data;

		n++;
		if (p->state == ICE_PS_SUCCEEDED)
			ok++;
		else if (p->state == ICE_PS_FAILED) {
			failed++;
			if (!first[0])
				first = p->err;
		}
		else if (p->state != ICE_PS_CANCELLED)
			running++;
	}
	snprintf(buf, sz, "%u pairs: %u succeeded, %u failed, %u running%s%s",
		 n, ok, failed, running, first[0] ? "; best failed: " : "",
		 first);
}

static void check_all_failed(struct ice_session *s)
{
	char sum[160];

	if (s->state != ICE_ST_CHECKING || !s->n_pairs)
		return;
	for (struct le *le = s->pairs.head; le; le = le->next) {
		const struct ice_pair *p = le->data;

		if (p->state != ICE_PS_FAILED && p->state != ICE_PS_CANCELLED)
			return;
	}
	for (struct le *le = s->bases.head; le; le = le->next) {
		const struct ice_base *b = le->data;

		if (!b->ready && !b->dead)
			return; /* a relay still allocating may add pairs */
	}
	summarize(s, sum, sizeof(sum));
	ice_fail(s, EHOSTUNREACH, "every candidate pair failed (%s)", sum);
}

static void connect_timeout(void *arg)
{
	struct ice_session *s = arg;
	char sum[160];

	if (s->state != ICE_ST_CHECKING)
		return;
	summarize(s, sum, sizeof(sum));
	ice_fail(s, ETIMEDOUT, "no pair selected within %u ms (%s)",
		 s->connect_timeout_ms, sum);
}

/* --- Selection and consent --------------------------------------------- */

static void consent_expired(void *arg)
{
	struct ice_session *s = arg;

	if (s->state != ICE_ST_CONNECTED)
		return;
	/* RFC 7675 5.1 lets consent expire after 30 s; the link's dead-path
	 * budget is 15 s (docs/ice.md). */
	ice_fail(s, ETIMEDOUT, "consent expired: no answer to consent "
		 "checks for %u ms on the %s path", s->consent_timeout_ms,
		 ice_path_type_name(s->ptype));
}

static void consent_send(void *arg);

static void consent_schedule(struct ice_session *s)
{
	uint32_t iv = ICE_CONSENT_INTERVAL_MS * (80 + rand_u32() % 41) / 100;

	tmr_start(&s->tmr_consent, iv, consent_send, s);
}

static void consent_send(void *arg)
{
	struct ice_session *s = arg;
	unsigned n = 0;

	if (s->state != ICE_ST_CONNECTED || !s->sel)
		return;
	for (struct le *le = s->txns.head; le; le = le->next) {
		struct ice_txn *t = le->data;

		if (t->consent)
			n++;
	}
	while (n >= ICE_CONSENT_MAX_OUTSTANDING) {
		for (struct le *le = s->txns.head; le; le = le->next) {
			struct ice_txn *t = le->data;

			if (t->consent) {
				mem_deref(t);
				break;
			}
		}
		n--;
	}
	(void)txn_alloc(NULL, s->sel, false, true);
	consent_schedule(s);
}

static void consent_refreshed(struct ice_session *s, uint32_t rtt)
{
	s->last_consent = tmr_jiffies();
	if (rtt)
		s->srtt_ms = s->srtt_ms ? (7 * s->srtt_ms + rtt) / 8 : rtt;
	tmr_start(&s->tmr_watch, s->consent_timeout_ms, consent_expired, s);
}

void ice_consent_start(struct ice_session *s)
{
	consent_refreshed(s, 0);
	/* Without an RTT from the checks (retransmitted), an early consent
	 * check measures one; then every interval. */
	if (!s->srtt_ms)
		tmr_start(&s->tmr_consent, ICE_FIRST_CONSENT_MS, consent_send, s);
	else
		consent_schedule(s);
}

static void select_pair(struct ice_session *s, struct ice_pair *p)
{
	char why[96];

	if (s->sel) {
		if (s->sel != p)
			log_debug("ice", "%s: ignoring a second nomination",
				  s->name);
		return;
	}
	if (s->state != ICE_ST_CHECKING)
		return;

	s->sel = mem_ref(p);
	p->nominated = true;
	s->state = ICE_ST_CONNECTED;
	s->t_connected = tmr_jiffies();
	s->nominating = NULL;
	tmr_cancel(&s->tmr_pace);
	tmr_cancel(&s->tmr_nominate);
	tmr_cancel(&s->tmr_watch);
	txns_cancel_checks(s);

	s->ptype = ice_pair_type(p);
	snprintf(why, sizeof(why), "not needed: a %s pair was selected",
		 ice_path_type_name(s->ptype));
	for (struct le *le = s->pairs.head; le; le = le->next) {
		struct ice_pair *q = le->data;

		list_unlink(&q->tle);
		if (q->state != ICE_PS_WAITING && q->state != ICE_PS_INPROGRESS)
			continue;
		q->state = ICE_PS_CANCELLED;
		/* For "why relayed": a direct pair that was still waiting
		 * for an answer when the relay won says so. */
		if (q->direct && !p->direct && q->checks)
			snprintf(q->err, sizeof(q->err),
				 "no answer to %u checks in %llu ms, so a "
				 "relay was used", q->checks,
				 (unsigned long long)(s->t_connected -
						      s->t_checks));
		else
			str_ncpy(q->err, why, sizeof(q->err));
	}
	s->srtt_ms = p->rtt_ms;
	ice_cand_str(s->sel_local, sizeof(s->sel_local), p->ltype,
		     ice_base_tr(p->base),
		     p->ltype == ICE_CT_RELAY ? &p->base->laddr : &p->mapped);
	ice_cand_str(s->sel_remote, sizeof(s->sel_remote), p->rcand->type,
		     p->rcand->tr, &p->rcand->addr);

	/* RFC 8656 12: a channel makes the relayed pair's framing 4 bytes
	 * instead of a 36-byte Send indication; turnc keeps it refreshed. */
	if (p->base->ops->bind)
		p->base->ops->bind(p->base, &p->rcand->addr);

	/* RFC 8445 8.3: candidates not in the selected pair may be freed:
	 * the other relays' allocations go back to the server. */
	for (struct le *le = s->bases.head; le; le = le->next) {
		struct ice_base *b = le->data;

		if (b != p->base && ice_base_is_relay(b) && !b->dead)
			ice_base_close(b);
	}
	ice_consent_start(s);
	ice_connected(s);
}

void ice_base_lost(struct ice_session *s, struct ice_base *b)
{
	if (s->sel && s->sel->base == b) {
		ice_fail(s, ECONNRESET, "the %s relay was lost: %s",
			 ice_path_type_name(s->ptype), b->err);
		return;
	}
	for (struct le *le = s->pairs.head; le;) {
		struct ice_pair *p = le->data;

		le = le->next;
		if (p->base != b)
			continue;
		if (p->state == ICE_PS_WAITING || p->state == ICE_PS_INPROGRESS)
			pair_fail(p, "relay lost: %s", b->err);
		if (s->state != ICE_ST_CHECKING)
			return;
	}
	if (s->state == ICE_ST_CHECKING) {
		if (s->controlling)
			nominate_eval(s);
		check_all_failed(s);
	}
}

/* --- Incoming STUN ----------------------------------------------------- */

static void reply(struct ice_session *s, struct ice_base *b,
		  const struct sa *src, const struct stun_msg *req,
		  uint16_t scode, const char *reason, bool integrity)
{
	struct mbuf *mb = mbuf_alloc(ICE_HEADROOM + 160);
	int err;

	if (!mb)
		return;
	mb->pos = ICE_HEADROOM;
	if (scode == 0) {
		/* RFC 8445 7.3.1: XOR-MAPPED-ADDRESS = the request's source,
		 * MESSAGE-INTEGRITY with our password, FINGERPRINT. */
		err = stun_msg_encode(mb, STUN_METHOD_BINDING,
				      STUN_CLASS_SUCCESS_RESP,
				      stun_msg_tid(req), NULL,
				      (const uint8_t *)s->lpwd,
				      strlen(s->lpwd), true, 0x00, 1,
				      STUN_ATTR_XOR_MAPPED_ADDR, src);
	}
	else {
		struct stun_errcode ec = { scode, (char *)reason };

		err = stun_msg_encode(mb, STUN_METHOD_BINDING,
				      STUN_CLASS_ERROR_RESP, stun_msg_tid(req),
				      &ec,
				      integrity ? (const uint8_t *)s->lpwd : NULL,
				      integrity ? strlen(s->lpwd) : 0, true,
				      0x00, 0);
	}
	if (!err) {
		mb->pos = ICE_HEADROOM;
		(void)b->ops->send(b, src, mb);
	}
	mem_deref(mb);
}

static struct ice_candidate *rcand_find(const struct ice_session *s,
					const struct sa *addr)
{
	for (struct le *le = s->rcands.head; le; le = le->next) {
		struct ice_candidate *c = le->data;

		if (sa_cmp(&c->addr, addr, SA_ALL))
			return c;
	}
	return NULL;
}

/* RFC 8445 7.3.1.3-7.3.1.5, after the check was answered. */
static void remote_check(struct ice_session *s, struct ice_base *b,
			 const struct sa *src, uint32_t prio, bool use_cand)
{
	struct ice_candidate *rc;
	struct ice_pair *p;

	if (b->dead || !b->cand)
		return;
	rc = rcand_find(s, src);
	if (!rc && ice_rcand_prflx_alloc(&rc, s, src, prio))
		return;
	p = pair_find(s, b, src);
	if (!p)
		p = pair_add(s, b, rc, true);
	if (!p)
		return;
	p->remote_ok = true;

	if (s->state == ICE_ST_CHECKING) {
		switch (p->state) {
		case ICE_PS_WAITING:
			trigger(p);
			break;
		case ICE_PS_INPROGRESS:
			/* the path just opened from the other side: send the
			 * pending request again now instead of at its RTO */
			if (p->txn)
				(void)txn_send(p->txn);
			break;
		case ICE_PS_FAILED:
		case ICE_PS_CANCELLED:
			p->err[0] = '\0';
			trigger(p);
			break;
		case ICE_PS_SUCCEEDED:
			break;
		}
	}
	if (use_cand && !s->controlling && s->state == ICE_ST_CHECKING) {
		if (p->state == ICE_PS_SUCCEEDED) {
			p->nominated = true;
			select_pair(s, p);
		}
		else {
			p->nominate_on_success = true;
			s->nom_pending = p;
		}
	}
}

static void handle_request(struct ice_session *s, struct ice_base *b,
			   const struct sa *src, const struct stun_msg *msg,
			   const struct stun_unknown_attr *ua)
{
	struct stun_attr *user, *attr;
	const char *u, *colon;
	size_t ulen, lulen = strlen(s->lufrag);
	uint32_t prio;
	bool use_cand;

	/* RFC 8445 7.2.2 requires FINGERPRINT; a wrong one is discarded
	 * silently (RFC 8489 14.7). */
	if (!stun_msg_attr(msg, STUN_ATTR_FINGERPRINT) ||
	    stun_msg_chk_fingerprint(msg))
		return;
	if (ua->typec > 0) {
		reply(s, b, src, msg, 420, "Unknown Attribute", false);
		return;
	}
	user = stun_msg_attr(msg, STUN_ATTR_USERNAME);
	if (!user || !stun_msg_attr(msg, STUN_ATTR_MSG_INTEGRITY)) {
		reply(s, b, src, msg, 400, "Bad Request", false);
		return;
	}
	/* RFC 8445 7.3: USERNAME is "<our ufrag>:<their ufrag>" and the
	 * MESSAGE-INTEGRITY key our password (RFC 8489 9.1). */
	u = user->v.username;
	ulen = u ? strlen(u) : 0;
	colon = u ? memchr(u, ':', ulen) : NULL;
	if (!colon || (size_t)(colon - u) != lulen ||
	    memcmp(u, s->lufrag, lulen) ||
	    (s->remote_set && strcmp(colon + 1, s->rufrag)) ||
	    stun_msg_chk_mi(msg, (const uint8_t *)s->lpwd, strlen(s->lpwd))) {
		reply(s, b, src, msg, 401, "Unauthorized", false);
		return;
	}
	attr = stun_msg_attr(msg, STUN_ATTR_PRIORITY);
	if (!attr) {
		reply(s, b, src, msg, 400, "Bad Request", true);
		return;
	}
	prio = attr->v.priority;
	use_cand = stun_msg_attr(msg, STUN_ATTR_USE_CAND) != NULL;

	/* RFC 8445 7.3.1.1: role conflicts */
	attr = stun_msg_attr(msg, s->controlling ? STUN_ATTR_CONTROLLING
						 : STUN_ATTR_CONTROLLED);
	if (attr) {
		bool we_win = s->tiebrk >= attr->v.uint64;

		if (s->controlling == we_win) {
			reply(s, b, src, msg, 487, "Role Conflict", true);
			return;
		}
		switch_role(s, !s->controlling);
	}

	reply(s, b, src, msg, 0, NULL, true);
	if (log_get_level() >= LOG_LVL_DEBUG) {
		char l[ICE_SA_STRLEN], r[ICE_SA_STRLEN];

		log_debug("ice", "%s: answered %s%s -> %s", s->name,
			  use_cand ? "nomination" : "check",
			  ice_sa_fmt(src, r, sizeof(r)),
			  ice_sa_fmt(&b->laddr, l, sizeof(l)));
	}

	if (s->state == ICE_ST_FAILED)
		return;
	if (s->state == ICE_ST_GATHERING || s->state == ICE_ST_GATHERED) {
		/* RFC 8445 7.3.1: answered; acted on when checks start */
		for (unsigned i = 0; i < s->n_early; i++) {
			struct ice_early *e = &s->early[i];

			if (e->base == b && sa_cmp(&e->src, src, SA_ALL)) {
				e->use_cand |= use_cand;
				return;
			}
		}
		if (s->n_early < ICE_MAX_EARLY) {
			struct ice_early *e = &s->early[s->n_early++];

			e->base = b;
			e->src = *src;
			e->prio = prio;
			e->use_cand = use_cand;
		}
		return;
	}
	remote_check(s, b, src, prio, use_cand);
}

static void handle_response(struct ice_txn *t, struct ice_base *b,
			    const struct sa *src, const struct stun_msg *msg)
{
	struct ice_pair *p = t->pair;
	struct ice_session *s = p->s;
	bool authentic, consent = t->consent, use_cand = t->use_cand;
	bool was_controlling = t->controlling;
	uint32_t rtt = 0;
	struct stun_attr *attr;
	char a[ICE_SA_STRLEN];

	/* RFC 8445 7.2.5.2.1: the answer must come from where the request
	 * went, to the base it left from. */
	if (b != p->base || !sa_cmp(src, &p->rcand->addr, SA_ALL)) {
		if (consent)
			return;
		mem_ref(p);
		mem_deref(t);
		pair_fail(p, "answer came from %s (non-symmetric)",
			  ice_sa_fmt(src, a, sizeof(a)));
		mem_deref(p);
		return;
	}
	authentic = stun_msg_attr(msg, STUN_ATTR_MSG_INTEGRITY) &&
		    !stun_msg_chk_mi(msg, (const uint8_t *)s->rpwd,
				     strlen(s->rpwd));
	/* Karn: only an answer to a request sent once times the path. */
	if (t->tx == 1)
		rtt = (uint32_t)(tmr_jiffies() - t->t0) + 1;

	if (stun_msg_class(msg) == STUN_CLASS_SUCCESS_RESP) {
		struct sa mapped;

		sa_init(&mapped, AF_UNSPEC);
		if (!authentic)
			return; /* RFC 8445 7.2.5.2: discarded */
		attr = stun_msg_attr(msg, STUN_ATTR_XOR_MAPPED_ADDR);
		if (attr)
			mapped = attr->v.xor_mapped_addr;
		mem_ref(p);
		mem_deref(t);
		if (consent) {
			if (s->state == ICE_ST_CONNECTED && p == s->sel)
				consent_refreshed(s, rtt);
		}
		else if (!attr) {
			pair_fail(p, "answer without XOR-MAPPED-ADDRESS");
		}
		else {
			pair_succeeded(p, &mapped, rtt, use_cand);
		}
		mem_deref(p);
		return;
	}

	/* error response */
	attr = stun_msg_attr(msg, STUN_ATTR_ERR_CODE);
	{
		uint16_t code = attr ? attr->v.err_code.code : 0;
		char reason[48];

		str_ncpy(reason, attr && attr->v.err_code.reason
				 ? attr->v.err_code.reason : "", sizeof(reason));
		mem_ref(p);
		mem_deref(t);
		if (consent) {
			/* The peer no longer knows our session (it restarted
			 * or moved on): consent is withdrawn at once rather
			 * than left to expire (docs/ice.md). */
			if (s->state == ICE_ST_CONNECTED && p == s->sel &&
			    (code == 400 || code == 401))
				ice_fail(s, ECONNREFUSED, "consent refused by "
					 "the peer: %u %s", code, reason);
		}
		else if (code == 487 && authentic) {
			/* RFC 8445 7.2.5.1: take the role opposite to the one
			 * the request claimed, and check again. */
			switch_role(s, !was_controlling);
			trigger(p);
		}
		else {
			pair_fail(p, "STUN error %u %s", code, reason);
		}
		mem_deref(p);
	}
}

void ice_checks_stun(struct ice_session *s, struct ice_base *b,
		     const struct sa *src, struct stun_msg *msg,
		     const struct stun_unknown_attr *ua)
{
	struct ice_txn *t;

	if (stun_msg_method(msg) != STUN_METHOD_BINDING)
		return;
	switch (stun_msg_class(msg)) {
	case STUN_CLASS_REQUEST:
		handle_request(s, b, src, msg, ua);
		break;
	case STUN_CLASS_SUCCESS_RESP:
	case STUN_CLASS_ERROR_RESP:
		t = txn_find(s, stun_msg_tid(msg));
		if (t)
			handle_response(t, b, src, msg);
		else if (s->stun)
			(void)stun_ctrans_recv(s->stun, msg, ua); /* gathering */
		break;
	default:
		break; /* Binding indications: RFC 8445 11 keepalives */
	}
}

struct ice_pair *ice_pair_for_data(struct ice_session *s,
				   const struct ice_base *b,
				   const struct sa *src)
{
	struct ice_pair *p = s->sel;

	if (p && p->base == b && sa_cmp(&p->rcand->addr, src, SA_ALL))
		return p;
	for (struct le *le = s->pairs.head; le; le = le->next) {
		p = le->data;
		if (p->base == b && (p->state == ICE_PS_SUCCEEDED || p->remote_ok) &&
		    sa_cmp(&p->rcand->addr, src, SA_ALL))
			return p;
	}
	return NULL;
}

/* --- Start and stop ------------------------------------------------------ */

void ice_checks_start(struct ice_session *s)
{
	unsigned n_early = s->n_early;

	s->state = ICE_ST_CHECKING;
	s->t_checks = tmr_jiffies();
	for (struct le *le = s->bases.head; le; le = le->next)
		ice_pairs_form_base(s, le->data);
	s->n_early = 0;
	for (unsigned i = 0; i < n_early && s->state == ICE_ST_CHECKING; i++) {
		struct ice_early *e = &s->early[i];

		remote_check(s, e->base, &e->src, e->prio, e->use_cand);
	}
	if (s->state != ICE_ST_CHECKING)
		return;
	log_debug("ice", "%s: checks start with %u pairs (%s)", s->name,
		  s->n_pairs, s->controlling ? "controlling" : "controlled");
	tmr_start(&s->tmr_watch, s->connect_timeout_ms, connect_timeout, s);
	if (s->controlling)
		tmr_start(&s->tmr_nominate, s->relay_wait_ms, nominate_timeout,
			  s);
	pace_kick(s);
}

void ice_checks_stop(struct ice_session *s)
{
	tmr_cancel(&s->tmr_pace);
	tmr_cancel(&s->tmr_nominate);
	tmr_cancel(&s->tmr_watch);
	tmr_cancel(&s->tmr_consent);
	list_flush(&s->txns);
	while (s->triggered.head)
		list_unlink(s->triggered.head);
	s->nominating = NULL;
}
