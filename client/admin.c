/* The admin HTTP API of mesh-client: /v1/status (JSON per peer, including
 * why a relayed link has no direct path), /metrics (Prometheus text) and
 * /v1/health, on libre's HTTP server. Owns only the rendering of what the
 * link manager, the forwarder and the signaling client already count; must
 * not change any link (read-only) nor block the main loop. */
#include "client/admin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
/* Not <re.h>: its re_json.h clashes with jansson's JSON_* names. */
#include <re_types.h>
#include <re_fmt.h>
#include <re_mem.h>
#include <re_mbuf.h>
#include <re_sa.h>
#include <re_list.h>
#include <re_msg.h>
#include <re_http.h>

#include "client/ice.h"
#include "client/link.h"
#include "client/peers.h"
#include "client/sigclient.h"
#include "common/log.h"

/* Pairs shown per link in "why_relayed"; ICE rarely has more. */
#define ADMIN_PAIRS_MAX 64

struct admin {
	struct http_sock *sock;
	struct peer_table *peers;
	const struct linkmgr *lm;
	const struct sigclient *sig;
	char self_id[65];
	uint64_t started_ms;
	bool relay_only, no_relay;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void destructor(void *arg)
{
	struct admin *a = arg;

	a->sock = mem_deref(a->sock);
	a->peers = mem_deref(a->peers);
}

static bool path_direct(enum ice_path_type t)
{
	return t == ICE_PATH_HOST || t == ICE_PATH_SRFLX || t == ICE_PATH_PRFLX;
}

static bool path_relayed(enum ice_path_type t)
{
	return t == ICE_PATH_RELAY_UDP || t == ICE_PATH_RELAY_TCP ||
	       t == ICE_PATH_RELAY_TLS;
}

/* RTT to show: QUIC's smoothed RTT once up (it follows the live path),
 * else what ICE measured. */
static double link_rtt_ms(const struct link_info *li)
{
	if (li->state == LINK_ST_UP && li->quic_srtt_us)
		return (double)li->quic_srtt_us / 1000.0;
	return li->ice_rtt_ms;
}

static uint64_t bytes_tx(const struct link_info *li)
{
	return li->fwd.tcp_bytes_tx + li->fwd.udp_bytes_tx;
}

static uint64_t bytes_rx(const struct link_info *li)
{
	return li->fwd.tcp_bytes_rx + li->fwd.udp_bytes_rx;
}

/* One link's candidate pairs, as JSON and counted for the summaries. */
struct pair_tally {
	size_t direct;           /* pairs of a direct type (host, srflx, prflx) */
	size_t direct_ok;        /* ... that succeeded */
	size_t direct_failed;    /* ... failed, or cancelled unanswered (with an error) */
	size_t direct_first_err; /* index of the first of those, if any */
	size_t ok, failed;       /* all pairs: succeeded / state failed */
	size_t checking;         /* all pairs: waiting or in progress */
	size_t first_failed;     /* index of the first failed pair, if any */
	unsigned unanswered;     /* checks sent on pairs still being checked */
};

static json_t *pairs_json(const struct ice_pair_info *pi, size_t n,
			  struct pair_tally *t)
{
	json_t *arr = json_array();

	memset(t, 0, sizeof(*t));
	for (size_t k = 0; k < n; k++) {
		json_t *p = json_object();
		const char *st = pi[k].state ? pi[k].state : "";
		bool ok = !strcmp(st, "succeeded");

		json_object_set_new(p, "local", json_string(pi[k].local));
		json_object_set_new(p, "remote", json_string(pi[k].remote));
		json_object_set_new(p, "type",
				    json_string(ice_path_type_name(pi[k].type)));
		json_object_set_new(p, "state", json_string(st));
		json_object_set_new(p, "error", json_string(pi[k].error));
		json_object_set_new(p, "checks", json_integer(pi[k].checks));
		json_object_set_new(p, "rtt_ms", json_integer(pi[k].rtt_ms));
		json_object_set_new(p, "nominated", json_boolean(pi[k].nominated));
		json_object_set_new(p, "selected", json_boolean(pi[k].selected));
		json_array_append_new(arr, p);

		if (ok)
			t->ok++;
		else if (!strcmp(st, "failed")) {
			if (!t->failed)
				t->first_failed = k;
			t->failed++;
		}
		else if (!strcmp(st, "waiting") || !strcmp(st, "in-progress")) {
			t->checking++;
			t->unanswered += pi[k].checks;
		}
		if (!path_direct(pi[k].type))
			continue;
		t->direct++;
		if (ok)
			t->direct_ok++;
		else if (pi[k].error[0]) {
			/* failed, or cancelled unanswered when a relay won */
			if (!t->direct_failed)
				t->direct_first_err = k;
			t->direct_failed++;
		}
	}
	return arr;
}

/* "why_relayed": every pair ICE tried with how it ended, and a one-line
 * summary of why none of the direct ones won. */
static json_t *why_relayed(const struct admin *a, size_t i)
{
	struct ice_pair_info pi[ADMIN_PAIRS_MAX];
	size_t n = linkmgr_pairs(a->lm, i, pi, ADMIN_PAIRS_MAX);
	const char *gerr = linkmgr_gather_errors(a->lm, i);
	const char *gsep = gerr && gerr[0] ? "; gathering: " : "";
	struct pair_tally t;
	char summary[512];
	json_t *o = json_object(), *arr;

	if (!gerr)
		gerr = "";
	if (n > ADMIN_PAIRS_MAX)
		n = ADMIN_PAIRS_MAX;
	arr = pairs_json(pi, n, &t);

	if (a->relay_only)
		snprintf(summary, sizeof(summary),
			 "--relay-only: no direct candidates are used");
	else if (!t.direct)
		snprintf(summary, sizeof(summary),
			 "no direct candidate pair to try (neither side has a "
			 "direct candidate the other can use)%s%s", gsep, gerr);
	else if (t.direct_ok)
		snprintf(summary, sizeof(summary),
			 "%zu of %zu direct pairs answered only after the "
			 "relayed pair was selected", t.direct_ok, t.direct);
	else if (t.direct_failed)
		snprintf(summary, sizeof(summary),
			 "%zu direct pair(s) tried, %zu got no usable answer, "
			 "e.g. %s -> %s: %s%s%s", t.direct, t.direct_failed,
			 pi[t.direct_first_err].local,
			 pi[t.direct_first_err].remote,
			 pi[t.direct_first_err].error, gsep, gerr);
	else
		snprintf(summary, sizeof(summary),
			 "%zu direct pair(s) tried, none answered in time%s%s",
			 t.direct, gsep, gerr);

	json_object_set_new(o, "summary", json_string(summary));
	json_object_set_new(o, "gather_errors", json_string(gerr));
	json_object_set_new(o, "pairs", arr);
	return o;
}

/* "why_not_up", for a link with an epoch that is not up: the current (or,
 * between epochs, the last) epoch's pairs and what became of them. Live:
 * while checks run it shows how many went unanswered so far. */
static json_t *why_not_up(const struct admin *a, size_t i,
			  const struct link_info *li)
{
	struct ice_pair_info pi[ADMIN_PAIRS_MAX];
	size_t n = linkmgr_pairs(a->lm, i, pi, ADMIN_PAIRS_MAX);
	const char *gerr = linkmgr_gather_errors(a->lm, i);
	const char *gsep = gerr && gerr[0] ? "; gathering: " : "";
	const char *opt = a->relay_only ?
		"--relay-only (direct paths are not used): " : a->no_relay ?
		"--no-relay (relayed paths are not used): " : "";
	struct pair_tally t;
	char summary[512], more[256] = "";
	json_t *o = json_object(), *arr;

	if (!gerr)
		gerr = "";
	if (n > ADMIN_PAIRS_MAX)
		n = ADMIN_PAIRS_MAX;
	arr = pairs_json(pi, n, &t);

	if (!n && li->state == LINK_ST_GATHERING)
		snprintf(summary, sizeof(summary),
			 "%sno candidate pair yet: gathering, or waiting for the "
			 "peer's description%s%s", opt, gsep, gerr);
	else if (!n && li->state == LINK_ST_CHECKING)
		snprintf(summary, sizeof(summary),
			 "%sno candidate pair: neither side has a candidate the "
			 "other can use%s%s", opt, gsep, gerr);
	else if (!n)
		snprintf(summary, sizeof(summary),
			 "%sno candidate pair in the last epoch%s%s", opt, gsep,
			 gerr);
	else {
		if (t.failed)
			snprintf(more, sizeof(more), "; e.g. %s -> %s: %s",
				 pi[t.first_failed].local,
				 pi[t.first_failed].remote,
				 pi[t.first_failed].error);
		else if (t.checking && !t.ok)
			snprintf(more, sizeof(more),
				 "; no answer yet to %u check(s)", t.unanswered);
		snprintf(summary, sizeof(summary),
			 "%s%zu pair(s) (%zu direct, %zu relayed): %zu "
			 "succeeded, %zu failed, %zu still being checked%s%s%s",
			 opt, n, t.direct, n - t.direct, t.ok, t.failed,
			 t.checking, more, gsep, gerr);
	}

	json_object_set_new(o, "summary", json_string(summary));
	json_object_set_new(o, "gather_errors", json_string(gerr));
	json_object_set_new(o, "pairs", arr);
	return o;
}

static json_t *link_json(const struct admin *a, size_t i)
{
	struct link_info li;
	json_t *o = json_object();

	linkmgr_info(a->lm, i, &li);
	json_object_set_new(o, "peer", json_string(li.peer));
	json_object_set_new(o, "state", json_string(link_state_name(li.state)));
	json_object_set_new(o, "role", json_string(li.controlling ?
						   "controlling" : "controlled"));
	json_object_set_new(o, "epoch", json_integer((json_int_t)li.epoch));
	json_object_set_new(o, "epochs", json_integer((json_int_t)li.epochs));
	json_object_set_new(o, "path", json_string(ice_path_type_name(li.path)));
	json_object_set_new(o, "local", json_string(li.local_cand));
	json_object_set_new(o, "remote", json_string(li.remote_cand));
	json_object_set_new(o, "rtt_ms", json_real(link_rtt_ms(&li)));
	json_object_set_new(o, "ice_rtt_ms", json_integer(li.ice_rtt_ms));
	json_object_set_new(o, "bytes_tx", json_integer((json_int_t)bytes_tx(&li)));
	json_object_set_new(o, "bytes_rx", json_integer((json_int_t)bytes_rx(&li)));
	json_object_set_new(o, "wire_tx", json_integer((json_int_t)li.wire_tx));
	json_object_set_new(o, "wire_rx", json_integer((json_int_t)li.wire_rx));
	json_object_set_new(o, "streams", json_integer((json_int_t)li.streams));
	json_object_set_new(o, "tcp_open", json_integer(li.fwd.tcp_open));
	json_object_set_new(o, "udp_dgrams_tx",
			    json_integer((json_int_t)li.fwd.udp_dgrams_tx));
	json_object_set_new(o, "udp_dgrams_rx",
			    json_integer((json_int_t)li.fwd.udp_dgrams_rx));
	json_object_set_new(o, "uptime_s", json_real((double)li.uptime_ms / 1000.0));
	json_object_set_new(o, "down_s", json_real((double)li.down_ms / 1000.0));
	json_object_set_new(o, "ups", json_integer((json_int_t)li.ups));
	json_object_set_new(o, "downs", json_integer((json_int_t)li.downs));
	json_object_set_new(o, "connect_ms", json_integer((json_int_t)li.connect_ms));
	json_object_set_new(o, "last_outage_s",
			    json_real((double)li.last_outage_ms / 1000.0));
	json_object_set_new(o, "last_down_reason", json_string(li.last_down_reason));
	if (li.state == LINK_ST_UP && path_relayed(li.path))
		json_object_set_new(o, "why_relayed", why_relayed(a, i));
	else if (li.state != LINK_ST_UP && li.state != LINK_ST_IDLE &&
		 li.state != LINK_ST_CLOSED)
		json_object_set_new(o, "why_not_up", why_not_up(a, i, &li));
	return o;
}

static void reply_status(struct admin *a, struct http_conn *conn,
			 const struct pl *prm)
{
	json_t *root = json_object(), *arr = json_array();
	size_t n = a->lm ? linkmgr_count(a->lm) : 0;
	size_t up = 0;
	char *text;

	(void)prm;
	json_object_set_new(root, "id", json_string(a->self_id));
	json_object_set_new(root, "version", json_string(MESH_VERSION));
	json_object_set_new(root, "peers_digest",
			    json_string(peers_digest(a->peers)));
	json_object_set_new(root, "uptime_s",
			    json_real((double)(mono_ms() - a->started_ms) / 1000.0));
	for (size_t i = 0; i < n; i++) {
		json_t *l = link_json(a, i);
		if (!strcmp(json_string_value(json_object_get(l, "state")), "up"))
			up++;
		json_array_append_new(arr, l);
	}
	json_object_set_new(root, "links_up", json_integer((json_int_t)up));
	json_object_set_new(root, "links", json_integer((json_int_t)n));
	if (a->sig) {
		struct sigclient_stats st;
		json_t *s = json_object();

		sigclient_stats(a->sig, &st);
		json_object_set_new(s, "current", json_string(sigclient_current(a->sig)));
		json_object_set_new(s, "coordinators", json_integer(st.coordinators));
		json_object_set_new(s, "reachable", json_integer(st.reachable));
		json_object_set_new(s, "shared", json_boolean(st.shared));
		json_object_set_new(root, "signaling", s);
	}
	json_object_set_new(root, "peers", arr);

	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (!text) {
		http_ereply(conn, 500, "Internal Server Error");
		return;
	}
	http_creply(conn, 200, "OK", "application/json", "%s\n", text);
	free(text);
}

static int metric_links(struct mbuf *mb, const struct admin *a)
{
	size_t n = a->lm ? linkmgr_count(a->lm) : 0;
	struct link_info *all = n ? mem_alloc(n * sizeof(*all), NULL) : NULL;
	int err = 0;

	/* One snapshot per scrape: every family below reads the same one. */
	if (n && !all)
		return ENOMEM;
	for (size_t i = 0; i < n; i++)
		linkmgr_info(a->lm, i, &all[i]);

	err |= mbuf_printf(mb,
		"# HELP mesh_client_link_up 1 while the link to the peer is up.\n"
		"# TYPE mesh_client_link_up gauge\n");
	for (size_t i = 0; i < n; i++) {
		const struct link_info *li = &all[i];
		err |= mbuf_printf(mb, "mesh_client_link_up{peer=\"%s\"} %d\n",
				   li->peer, li->state == LINK_ST_UP);
	}
	err |= mbuf_printf(mb,
		"# HELP mesh_client_link_state The link's state (one series per peer is 1).\n"
		"# TYPE mesh_client_link_state gauge\n");
	for (size_t i = 0; i < n; i++) {
		const struct link_info *li = &all[i];
		for (int st = LINK_ST_IDLE; st <= LINK_ST_CLOSED; st++)
			err |= mbuf_printf(mb,
				"mesh_client_link_state{peer=\"%s\",state=\"%s\"} %d\n",
				li->peer, link_state_name((enum link_state)st),
				li->state == (enum link_state)st);
	}
	err |= mbuf_printf(mb,
		"# HELP mesh_client_link_path The selected path type of the link (1 for the current one).\n"
		"# TYPE mesh_client_link_path gauge\n");
	for (size_t i = 0; i < n; i++) {
		const struct link_info *li = &all[i];
		if (li->state == LINK_ST_UP)
			err |= mbuf_printf(mb,
				"mesh_client_link_path{peer=\"%s\",type=\"%s\"} 1\n",
				li->peer, ice_path_type_name(li->path));
	}

	struct {
		const char *name, *type, *help;
	} m[] = {
		{ "mesh_client_link_rtt_seconds", "gauge", "Round-trip time of the link (QUIC smoothed RTT when up)." },
		{ "mesh_client_link_epoch", "gauge", "Current negotiation epoch of the link." },
		{ "mesh_client_link_uptime_seconds", "gauge", "Seconds since the link came up (0 when down)." },
		{ "mesh_client_link_ups_total", "counter", "Times the link came up." },
		{ "mesh_client_link_downs_total", "counter", "Times the link went down." },
		{ "mesh_client_link_epochs_total", "counter", "Epochs started for the link." },
		{ "mesh_client_link_streams", "gauge", "QUIC streams held on the link." },
		{ "mesh_client_link_tcp_open", "gauge", "Forwarded TCP connections open to or from the peer." },
		{ "mesh_client_link_last_outage_seconds", "gauge", "How long the link's last outage lasted." },
	};
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		err |= mbuf_printf(mb, "# HELP %s %s\n# TYPE %s %s\n",
				   m[k].name, m[k].help, m[k].name, m[k].type);
		for (size_t i = 0; i < n; i++) {
			const struct link_info *li = &all[i];
			double v = 0;
			switch (k) {
			case 0: v = link_rtt_ms(li) / 1000.0; break;
			case 1: v = (double)li->epoch; break;
			case 2: v = (double)li->uptime_ms / 1000.0; break;
			case 3: v = (double)li->ups; break;
			case 4: v = (double)li->downs; break;
			case 5: v = (double)li->epochs; break;
			case 6: v = (double)li->streams; break;
			case 7: v = li->fwd.tcp_open; break;
			case 8: v = (double)li->last_outage_ms / 1000.0; break;
			}
			err |= mbuf_printf(mb, "%s{peer=\"%s\"} %.6g\n",
					   m[k].name, li->peer, v);
		}
	}

	err |= mbuf_printf(mb,
		"# HELP mesh_client_forward_bytes_total Application bytes forwarded (tx: to the peer, rx: from it).\n"
		"# TYPE mesh_client_forward_bytes_total counter\n");
	for (size_t i = 0; i < n; i++) {
		const struct link_info *li = &all[i];
		err |= mbuf_printf(mb,
			"mesh_client_forward_bytes_total{peer=\"%s\",proto=\"tcp\",dir=\"tx\"} %llu\n"
			"mesh_client_forward_bytes_total{peer=\"%s\",proto=\"tcp\",dir=\"rx\"} %llu\n"
			"mesh_client_forward_bytes_total{peer=\"%s\",proto=\"udp\",dir=\"tx\"} %llu\n"
			"mesh_client_forward_bytes_total{peer=\"%s\",proto=\"udp\",dir=\"rx\"} %llu\n",
			li->peer, (unsigned long long)li->fwd.tcp_bytes_tx,
			li->peer, (unsigned long long)li->fwd.tcp_bytes_rx,
			li->peer, (unsigned long long)li->fwd.udp_bytes_tx,
			li->peer, (unsigned long long)li->fwd.udp_bytes_rx);
	}
	err |= mbuf_printf(mb,
		"# HELP mesh_client_wire_bytes_total QUIC UDP payload bytes of the current link.\n"
		"# TYPE mesh_client_wire_bytes_total gauge\n");
	for (size_t i = 0; i < n; i++) {
		const struct link_info *li = &all[i];
		err |= mbuf_printf(mb,
			"mesh_client_wire_bytes_total{peer=\"%s\",dir=\"tx\"} %llu\n"
			"mesh_client_wire_bytes_total{peer=\"%s\",dir=\"rx\"} %llu\n",
			li->peer, (unsigned long long)li->wire_tx,
			li->peer, (unsigned long long)li->wire_rx);
	}
	err |= mbuf_printf(mb,
		"# HELP mesh_client_forward_udp_dropped_total UDP datagrams dropped by the forwarder, by reason.\n"
		"# TYPE mesh_client_forward_udp_dropped_total counter\n");
	for (size_t i = 0; i < n; i++) {
		const struct link_info *li = &all[i];
		const struct { const char *r; uint64_t v; } d[] = {
			{ "no_link", li->fwd.drop_no_link },
			{ "carrier", li->fwd.drop_carrier },
			{ "backlog", li->fwd.drop_backlog },
			{ "bad_frame", li->fwd.drop_bad_frame },
			{ "not_forwarded", li->fwd.drop_not_fwd },
			{ "local", li->fwd.drop_local },
		};
		for (size_t k = 0; k < sizeof(d) / sizeof(d[0]); k++)
			err |= mbuf_printf(mb,
				"mesh_client_forward_udp_dropped_total{peer=\"%s\",reason=\"%s\"} %llu\n",
				li->peer, d[k].r, (unsigned long long)d[k].v);
	}
	mem_deref(all);
	return err;
}

static int metric_global(struct mbuf *mb, const struct admin *a)
{
	int err = 0;

	err |= mbuf_printf(mb,
		"# HELP mesh_client_info The client's id, version and peer-table digest.\n"
		"# TYPE mesh_client_info gauge\n"
		"mesh_client_info{id=\"%s\",version=\"%s\",peers_digest=\"%s\"} 1\n"
		"# HELP mesh_client_uptime_seconds Seconds since the client started.\n"
		"# TYPE mesh_client_uptime_seconds gauge\n"
		"mesh_client_uptime_seconds %.3f\n",
		a->self_id, MESH_VERSION, peers_digest(a->peers),
		(double)(mono_ms() - a->started_ms) / 1000.0);
	if (a->lm) {
		struct linkmgr_stats ls;
		linkmgr_stats(a->lm, &ls);
		err |= mbuf_printf(mb,
			"# HELP mesh_client_quic_auth_failed_total QUIC handshakes refused for a certificate fingerprint.\n"
			"# TYPE mesh_client_quic_auth_failed_total counter\n"
			"mesh_client_quic_auth_failed_total %llu\n"
			"# HELP mesh_client_offers_rejected_total Offers or answers refused (malformed payload, bad fingerprint).\n"
			"# TYPE mesh_client_offers_rejected_total counter\n"
			"mesh_client_offers_rejected_total %llu\n"
			"# HELP mesh_client_ice_failed_total ICE sessions that failed or whose path died.\n"
			"# TYPE mesh_client_ice_failed_total counter\n"
			"mesh_client_ice_failed_total %llu\n"
			"# HELP mesh_client_quic_closed_total QUIC connections closed for any reason.\n"
			"# TYPE mesh_client_quic_closed_total counter\n"
			"mesh_client_quic_closed_total %llu\n",
			(unsigned long long)ls.auth_failed,
			(unsigned long long)ls.offers_rejected,
			(unsigned long long)ls.ice_failed,
			(unsigned long long)ls.quic_closed);
	}
	if (a->sig) {
		struct sigclient_stats st;
		sigclient_stats(a->sig, &st);
		const struct { const char *reason; uint64_t v; } d[] = {
			{ "duplicate", st.dup_dropped },
			{ "psig", st.psig_dropped },
			{ "not_for_us", st.to_dropped },
			{ "unknown_sender", st.from_dropped },
			{ "malformed", st.malformed_dropped },
		};
		err |= mbuf_printf(mb,
			"# HELP mesh_client_signal_polls_total Long polls by result.\n"
			"# TYPE mesh_client_signal_polls_total counter\n"
			"mesh_client_signal_polls_total{result=\"ok\"} %llu\n"
			"mesh_client_signal_polls_total{result=\"failed\"} %llu\n"
			"# HELP mesh_client_signal_delivered_total Signaling messages that passed every check.\n"
			"# TYPE mesh_client_signal_delivered_total counter\n"
			"mesh_client_signal_delivered_total %llu\n"
			"# HELP mesh_client_signal_publishes_total Publishes by result.\n"
			"# TYPE mesh_client_signal_publishes_total counter\n"
			"mesh_client_signal_publishes_total{result=\"ok\"} %llu\n"
			"mesh_client_signal_publishes_total{result=\"stale\"} %llu\n"
			"mesh_client_signal_publishes_total{result=\"failed\"} %llu\n"
			"# HELP mesh_client_signal_failovers_total Moves to another coordinator.\n"
			"# TYPE mesh_client_signal_failovers_total counter\n"
			"mesh_client_signal_failovers_total %llu\n"
			"# HELP mesh_client_signal_coordinators Coordinators known and answering.\n"
			"# TYPE mesh_client_signal_coordinators gauge\n"
			"mesh_client_signal_coordinators{kind=\"known\"} %u\n"
			"mesh_client_signal_coordinators{kind=\"reachable\"} %u\n"
			"# HELP mesh_client_signal_dropped_total Signaling messages dropped, by reason.\n"
			"# TYPE mesh_client_signal_dropped_total counter\n",
			(unsigned long long)st.polls_ok,
			(unsigned long long)st.polls_failed,
			(unsigned long long)st.delivered,
			(unsigned long long)st.publish_ok,
			(unsigned long long)st.publish_stale,
			(unsigned long long)st.publish_failed,
			(unsigned long long)st.failovers,
			st.coordinators, st.reachable);
		for (size_t k = 0; k < sizeof(d) / sizeof(d[0]); k++)
			err |= mbuf_printf(mb,
				"mesh_client_signal_dropped_total{reason=\"%s\"} %llu\n",
				d[k].reason, (unsigned long long)d[k].v);
	}
	return err;
}

static void reply_metrics(struct admin *a, struct http_conn *conn)
{
	struct mbuf *mb = mbuf_alloc(8192);
	int err;

	if (!mb) {
		http_ereply(conn, 500, "Internal Server Error");
		return;
	}
	err = metric_global(mb, a);
	err |= metric_links(mb, a);
	if (err)
		http_ereply(conn, 500, "Internal Server Error");
	else
		http_creply(conn, 200, "OK",
			    "text/plain; version=0.0.4; charset=utf-8", "%b",
			    mb->buf, mb->end);
	mem_deref(mb);
}

static void reqh(struct http_conn *conn, const struct http_msg *msg,
		 void *arg)
{
	struct admin *a = arg;

	if (pl_strcmp(&msg->met, "GET") && pl_strcmp(&msg->met, "HEAD")) {
		http_creply(conn, 405, "Method Not Allowed", "application/json",
			    "{\"error\":\"method_not_allowed\",\"message\":"
			    "\"only GET\"}\n");
		return;
	}
	if (!pl_strcmp(&msg->path, "/v1/status"))
		reply_status(a, conn, &msg->prm);
	else if (!pl_strcmp(&msg->path, "/metrics"))
		reply_metrics(a, conn);
	else if (!pl_strcmp(&msg->path, "/v1/health"))
		http_creply(conn, 200, "OK", "application/json",
			    "{\"status\":\"ok\"}\n");
	else
		http_creply(conn, 404, "Not Found", "application/json",
			    "{\"error\":\"not_found\",\"message\":"
			    "\"try /v1/status or /metrics\"}\n");
}

int admin_alloc(struct admin **ap, const struct admin_config *cfg, char *err,
		size_t errlen)
{
	struct admin *a;
	struct sa laddr;
	int e;

	if (!ap || !cfg || !cfg->ip || !cfg->peers)
		return EINVAL;
	a = mem_zalloc(sizeof(*a), destructor);
	if (!a)
		return ENOMEM;
	a->peers = mem_ref(cfg->peers);
	a->lm = cfg->lm;
	a->sig = cfg->sig;
	a->started_ms = mono_ms();
	a->relay_only = cfg->relay_only;
	a->no_relay = cfg->no_relay;
	snprintf(a->self_id, sizeof(a->self_id), "%s", cfg->self_id);

	e = sa_set_str(&laddr, cfg->ip, cfg->port);
	if (e) {
		snprintf(err, errlen, "--admin: bad address %s", cfg->ip);
		goto out;
	}
	e = http_listen(&a->sock, &laddr, reqh, a);
	if (e) {
		re_snprintf(err, errlen, "--admin: cannot listen on %J: %m",
			    &laddr, e);
		goto out;
	}
	log_info("admin", "listening on http://%s%s%s:%u (/v1/status, /metrics)",
		 strchr(cfg->ip, ':') ? "[" : "", cfg->ip,
		 strchr(cfg->ip, ':') ? "]" : "", cfg->port);
out:
	if (e)
		mem_deref(a);
	else
		*ap = a;
	return e;
}

void admin_set_sources(struct admin *a, const struct linkmgr *lm,
		       const struct sigclient *sig)
{
	if (!a)
		return;
	a->lm = lm;
	a->sig = sig;
}
