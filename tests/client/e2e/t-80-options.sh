#!/usr/bin/env bash
# t-80-options: the diagnostics options and the peer-VIP plan, four meshes
# on one network at once.
#   relay-only  r1, r2 behind endpoint-independent NATs with --relay-only:
#               a relay is selected although a direct path would win; TCP
#               and UDP through it; why_relayed names the option.
#   no-relay    n1, n2 behind symmetric NATs with --no-relay: the link never
#               comes up (only a relay would work) and /v1/status says why.
#               d1, d2 behind endpoint-independent NATs with --no-relay: the
#               direct path works.
#   peer-VIP    v1, v2 behind symmetric NATs, v3 behind an
#               endpoint-independent one, with CONTRACT section 5's plan:
#               apps on 127.0.0.1:<port> reached through 127.50.0.<vip>:<port>
#               with source 127.50.0.<sender vip>, TCP and UDP; the v1-v2
#               link is relayed and /v1/status's why_relayed lists every pair
#               tried and how it failed. Bad VIP plans exit 2 with one line.
source "$(dirname "$0")/lib.sh"
netlab_require jq
e2e_init
netlab_nat n-r1 198.18.0.121 eim 198.18.21.0/24
netlab_host_behind n-r1 r1 198.18.21.10
netlab_nat n-r2 198.18.0.122 eim 198.18.22.0/24
netlab_host_behind n-r2 r2 198.18.22.10
netlab_nat n-n1 198.18.0.123 symmetric 198.18.23.0/24
netlab_host_behind n-n1 n1 198.18.23.10
netlab_nat n-n2 198.18.0.124 symmetric 198.18.24.0/24
netlab_host_behind n-n2 n2 198.18.24.10
netlab_nat n-d1 198.18.0.125 eim 198.18.25.0/24
netlab_host_behind n-d1 d1 198.18.25.10
netlab_nat n-d2 198.18.0.126 eim 198.18.26.0/24
netlab_host_behind n-d2 d2 198.18.26.10
netlab_nat n-v1 198.18.0.127 symmetric 198.18.27.0/24
netlab_host_behind n-v1 v1 198.18.27.10
netlab_nat n-v2 198.18.0.128 symmetric 198.18.28.0/24
netlab_host_behind n-v2 v2 198.18.28.10
netlab_nat n-v3 198.18.0.129 eim 198.18.29.0/24
netlab_host_behind n-v3 v3 198.18.29.10
e2e_coordinator

# --- helpers ------------------------------------------------------------------

# jq_check NAME JSON FILTER: ok when FILTER (jq -e) holds for JSON.
jq_check() {
	if jq -e "$3" >/dev/null 2>&1 <<<"$2"; then
		ok "$1"
	else
		notok "$1" "jq '$3' does not hold"
		jq -c . <<<"$2" 2>/dev/null | head -c 4000 | sed 's/^/# /' || true
		echo
	fi
}

# peer_json HOST PEER: PEER's entry of HOST's /v1/status.
peer_json() {
	e2e_json "$1" /v1/status | jq -c --arg p "$2" '.peers[] | select(.peer == $p)'
}

# vip_tcp HOST ADDR PORT MSG: one line to ADDR:PORT; prints the answer.
vip_tcp() {
	echo "$4" | NETLAB_TIMEOUT=10 netlab_exec "$1" socat -t 5 -T 5 - "TCP:$2:$3" 2>/dev/null
}

# vip_udp HOST ADDR PORT MSG: one datagram from the app's own address
# 127.0.0.1:PORT (where the peer's answers come back in the peer-VIP plan)
# to ADDR:PORT; prints the answer. The socket is connected, so an answer
# is only taken from ADDR:PORT.
vip_udp() {
	echo "$4" | NETLAB_TIMEOUT=10 netlab_exec "$1" socat -t 3 -T 3 - \
		"UDP:$2:$3,bind=127.0.0.1:$3" 2>/dev/null
}

# expect_match NAME REGEX CMD...: ok when CMD's output matches REGEX (3
# tries, a datagram may be lost).
expect_match() {
	local name=$1 re=$2 got='' i
	shift 2
	for i in 1 2 3; do
		got=$("$@" || true)
		[[ $got =~ $re ]] && break
		sleep 0.3
	done
	if [[ $got =~ $re ]]; then ok "$name"; else notok "$name" "want /$re/, got '$got'"; fi
}

# --- bad VIP plans: refused before anything starts ----------------------------

# bad_plan NAME JSON MESSAGE: the client exits 2 with exactly one line on
# stderr, "mesh-client: --peers: ...MESSAGE...". Run inside a namespace and
# bounded, so a plan wrongly accepted cannot reach anything.
bad_plan() {
	local name=$1 json=$2 want=$3 rc=0 err
	err=$(NETLAB_TIMEOUT=10 netlab_exec r1 "$E2E_CLIENT" --id w1 --peers "$json" \
		--coordinator "$E2E_COORD_URL" --secret-file "$E2E_SECRET" \
		--admin off 2>&1 >/dev/null) || rc=$?
	if [[ $rc == 2 && $(wc -l <<<"$err") == 1 && $err == "mesh-client: --peers: "*"$want"* ]]; then
		ok "bad VIP plan, $name: exit 2, '$err'"
	else
		notok "bad VIP plan, $name" "rc=$rc, stderr '$err' (want exit 2 and one line with '$want')"
	fi
}
bad_plan "vip out of range" \
	'{"vip_net":"127.50.0.0/24","allow":[{"port":5432}],"peers":[{"id":"w1","vip":1},{"id":"w2","vip":255}]}' \
	'peer "w2": vip 255 is out of range for /24 (1..254)'
bad_plan "vip 0" \
	'{"vip_net":"127.50.0.0/24","allow":[{"port":5432}],"peers":[{"id":"w1","vip":0},{"id":"w2","vip":2}]}' \
	'vip 0 is out of range for /24 (1..254)'
bad_plan "vip used twice" \
	'{"vip_net":"127.50.0.0/24","allow":[{"port":5432}],"peers":[{"id":"w1","vip":7},{"id":"w2","vip":7}]}' \
	'vip 7 is used by both "w1" and "w2"'

# --- start everything -----------------------------------------------------------

PR='{"peers":[{"id":"r1","ports":[18000,18100]},{"id":"r2","ports":[18001,18101]}]}'
PN='{"peers":[{"id":"n1","ports":[18000,18100]},{"id":"n2","ports":[18001,18101]}]}'
PD='{"peers":[{"id":"d1","ports":[18000,18100]},{"id":"d2","ports":[18001,18101]}]}'
# CONTRACT section 5's example plan, with a third peer.
PV='{"vip_net":"127.50.0.0/24","allow":[{"port":5432},{"port":8301,"udp":true}],"peers":[{"id":"v1","vip":1},{"id":"v2","vip":2},{"id":"v3","vip":3}]}'

for h in r2 d2; do
	e2e_tcp_echo "$h" 18001
	e2e_udp_echo "$h" 18101
done
for h in v1 v2 v3; do e2e_tcp_echo "$h" 5432; done
e2e_udp_echo v2 8301

t0=$(now_ms)
e2e_start r1 r1 "$PR" --relay-only
e2e_start r2 r2 "$PR" --relay-only
e2e_start n1 n1 "$PN" --no-relay
e2e_start n2 n2 "$PN" --no-relay
e2e_start d1 d1 "$PD" --no-relay
e2e_start d2 d2 "$PD" --no-relay
for h in v1 v2 v3; do e2e_start "$h" "$h" "$PV"; done

# --- 1. --relay-only behind EIM NATs ------------------------------------------

if e2e_wait_all 25 r1 r2; then
	ok "relay-only: link up, seen $(($(now_ms) - t0)) ms after start"
else
	notok "relay-only: link up" "not within 25 s"
fi
for h in r1 r2; do
	o=$([[ $h == r1 ]] && echo r2 || echo r1)
	js=$(peer_json "$h" "$o")
	echo "# $h: path $(jq -r '.path + " " + .local + " -> " + .remote' <<<"$js")"
	jq_check "relay-only: $h selected a relay path (/v1/status)" "$js" \
		'.state == "up" and (.path | startswith("relay-")) and (.local + .remote | test("relay-"))'
done
js=$(peer_json r1 r2)
jq_check "relay-only: why_relayed names --relay-only" "$js" \
	'.why_relayed.summary == "--relay-only: no direct candidates are used"'
check "relay-only: only relay candidates gathered (log)" bash -c \
	"grep -h 'gathered' '${E2E_LOG[r1]}' '${E2E_LOG[r2]}' | grep -q . && ! grep -h 'gathered' '${E2E_LOG[r1]}' '${E2E_LOG[r2]}' | grep -vq 'gathered 0 host, 0 srflx, '"
jq_check "relay-only: no direct pair was formed" "$js" \
	'[.why_relayed.pairs[] | select(.type | startswith("relay-") | not)] | length == 0'
e2e_expect "relay-only: tcp r1->r2 through the relay" "tcp r2 hello 127.0.0.1:18000" e2e_tcp r1 18001 hello
e2e_expect "relay-only: udp r1->r2 and back through the relay" "udp r2 ping 127.0.0.1:18100" e2e_udp r1 18101 18100 ping

# --- 2b. --no-relay behind EIM NATs: direct works ------------------------------

if e2e_wait_all 20 d1 d2; then
	ok "no-relay, EIM: link up, seen $(($(now_ms) - t0)) ms after start"
else
	notok "no-relay, EIM: link up" "not within 20 s"
fi
for h in d1 d2; do
	o=$([[ $h == d1 ]] && echo d2 || echo d1)
	js=$(peer_json "$h" "$o")
	echo "# $h: path $(jq -r '.path + " " + .local + " -> " + .remote' <<<"$js")"
	jq_check "no-relay, EIM: $h on a direct path" "$js" \
		'.state == "up" and (.path == "host" or .path == "srflx" or .path == "prflx") and (has("why_relayed") | not)'
done
e2e_expect "no-relay, EIM: tcp d1->d2 direct" "tcp d2 hello 127.0.0.1:18000" e2e_tcp d1 18001 hello
e2e_expect "no-relay, EIM: udp d1->d2 and back direct" "udp d2 ping 127.0.0.1:18100" e2e_udp d1 18101 18100 ping

# --- 3. the peer-VIP plan -----------------------------------------------------

if e2e_wait_all 25 v1 v2 v3; then
	ok "peer-VIP: all 3 links up, seen $(($(now_ms) - t0)) ms after start"
else
	notok "peer-VIP: all 3 links up" "not within 25 s"
fi
for i in 1 2 3; do
	echo "# v$i: $(e2e_status "v$i" | awk 'NR > 2 && /^[^ ]/ { printf "%s=%s ", $1, $3 }')"
done
check "peer-VIP: the log names the plan" e2e_log_has v1 "peers *3 peers, peer-VIP plan, digest [0-9a-f]\{12\}"
# TCP in all 6 directions: the app on 127.0.0.1:5432 sees 127.50.0.<sender>.
for i in 1 2 3; do
	for j in 1 2 3; do
		((i == j)) && continue
		expect_match "peer-VIP: tcp v$i -> 127.50.0.$j:5432, source 127.50.0.$i" \
			"^tcp v$j hi-$i 127\.50\.0\.$i:[0-9]+\$" vip_tcp "v$i" "127.50.0.$j" 5432 "hi-$i"
	done
done
# UDP to v2 from v1 and v3, each from its app's port 8301: v2's app sees
# 127.50.0.<sender vip>:8301, and its answer to that address comes back to
# the sender from 127.50.0.2:8301 (the connected socket takes nothing else).
for i in 1 3; do
	e2e_expect "peer-VIP: udp v$i -> 127.50.0.2:8301 and back, source 127.50.0.$i:8301" \
		"udp v2 ping-$i 127.50.0.$i:8301" vip_udp "v$i" 127.50.0.2 8301 "ping-$i"
done
# Only what "allow" lists: v1's client binds UDP on the other peers' VIPs
# for 8301 only (not on TCP-only 5432, nothing on its own VIP), and TCP
# to a port not allowed is refused.
udp_socks=$(ip netns exec "$(netlab_ns v1)" ss -Hlnu | awk '{ print $4 }' | sort | tr '\n' ' ')
echo "# v1 UDP sockets: $udp_socks"
check "peer-VIP: UDP bound on 127.50.0.2:8301 and 127.50.0.3:8301 only" \
	test "$(grep -o '127\.50\.0\.[0-9]*:[0-9]*' <<<"$udp_socks" | tr '\n' ' ')" = "127.50.0.2:8301 127.50.0.3:8301 "
refused=$(echo x | NETLAB_TIMEOUT=10 netlab_exec v1 socat -T 2 - TCP:127.50.0.2:5433 2>&1 >/dev/null || true)
check "peer-VIP: TCP to a port not allowed (127.50.0.2:5433) is refused" grep -q 'Connection refused' <<<"$refused"

# --- 4. why a relayed link is relayed (symmetric NATs: v1 - v2) ---------------

p=$(e2e_field v1 v2 3)
check "peer-VIP: v1-v2 (symmetric NATs) is relayed (got $p)" test "${p#relay-}" != "$p"
js=$(peer_json v1 v2)
echo "# v1-v2: $(jq -r '.why_relayed.summary' <<<"$js")"
jq -r '.why_relayed.pairs[] | "#   \(.state) \(.type) \(.local) -> \(.remote) checks=\(.checks) \(.error)"' <<<"$js" || true
jq_check "why_relayed: summary, gather_errors, pairs present; summary non-empty" "$js" \
	'.why_relayed | has("summary") and has("gather_errors") and has("pairs") and (.summary | length > 0)'
jq_check "why_relayed: summary counts the direct pairs tried" "$js" \
	'.why_relayed.summary | test("^[1-9][0-9]* direct pair\\(s\\) tried, [1-9][0-9]* got no usable answer, e\\.g\\. ")'
jq_check "why_relayed: every pair has local, remote, type, state non-empty and checks" "$js" \
	'[.why_relayed.pairs[] | (.local | length > 0) and (.remote | length > 0) and (.type | length > 0) and (.state | length > 0) and (.checks | type == "number")] | length > 0 and all'
jq_check "why_relayed: direct pairs tried, each failed or cancelled with an error" "$js" \
	'[.why_relayed.pairs[] | select(.type == "host" or .type == "srflx" or .type == "prflx")] | length > 0 and all(.state == "failed" or .state == "cancelled") and all(.error | length > 0) and all(.checks > 0)'
jq_check "why_relayed: exactly one selected pair, a relayed one" "$js" \
	'[.why_relayed.pairs[] | select(.selected)] | length == 1 and (.[0].type | startswith("relay-"))'
st=$(e2e_status v1)
check "status prints the relay reason for v2" grep -q '^  v2: relayed: [1-9][0-9]* direct pair(s) tried' <<<"$st"

# --- 2a. --no-relay behind symmetric NATs: never up, and why -------------------

# An epoch's checks run out after 9.5 s (every pair failed) or 15 s (no
# pair selected). The side whose ICE gives up first keeps that as the
# reason and starts (or asks for) the next epoch; the other side's epoch is
# replaced first ("a newer offer", "the peer asks for a new epoch"), and
# its reason keeps what its checks had found so far. Both sides must say
# that no pair worked. Each side's reason is taken the first time it says
# so: a later epoch may end otherwise (e.g. replaced while still
# gathering), and the reason always tells only the last one.
ICE_FAIL_RE='^ICE: (every candidate pair failed|no pair selected within [0-9]+ ms) \([1-9][0-9]* pairs: 0 succeeded'
ICE_SOFAR_RE='; ICE so far: [1-9][0-9]* pairs: 0 succeeded, [0-9]+ failed, [0-9]+ running; (best failed: .+|no answer yet to [1-9][0-9]* check\(s\))$'
declare -A reason=() reason_ms=() last=()
ice_reasons() {
	local h r
	for h in n1 n2; do
		[[ -n ${reason[$h]:-} ]] && continue
		r=$(peer_json "$h" "$([[ $h == n1 ]] && echo n2 || echo n1)" | jq -r '.last_down_reason') || r=''
		last[$h]=$r
		if [[ $r =~ $ICE_FAIL_RE || $r =~ $ICE_SOFAR_RE ]]; then
			reason[$h]=$r
			reason_ms[$h]=$(($(now_ms) - t0))
		fi
	done
	[[ -n ${reason[n1]:-} && -n ${reason[n2]:-} ]]
}
t1=$(now_ms)
until ice_reasons || (($(now_ms) - t1 > 45000)); do sleep 0.2; done
for h in n1 n2; do
	if [[ -n ${reason[$h]:-} ]]; then
		ok "no-relay, symmetric: $h's last_down_reason says no direct pair worked, ${reason_ms[$h]} ms after start: ${reason[$h]}"
	else
		notok "no-relay, symmetric: $h's last_down_reason says no direct pair worked" \
			"not within 45 s; last: '${last[$h]:-}'"
	fi
done
# why_not_up shows the current epoch's pairs (between an offer and its
# answer there are none yet: wait for them).
has_pairs() {
	peer_json "$1" "$2" | jq -e '.why_not_up.pairs | length > 0' >/dev/null
}
for h in n1 n2; do
	o=$([[ $h == n1 ]] && echo n2 || echo n1)
	netlab_wait_until 10 "$h's pairs" has_pairs "$h" "$o" || true
	js=$(peer_json "$h" "$o")
	echo "# $h: why_not_up: $(jq -r '.why_not_up.summary' <<<"$js")"
	jq_check "no-relay, symmetric: $h never up, no path" "$js" \
		'.state != "up" and .ups == 0 and .path == "none"'
	jq_check "no-relay, symmetric: $h's why_not_up names --no-relay, no pair answered" "$js" \
		'.why_not_up.summary | test("^--no-relay \\(relayed paths are not used\\): [1-9][0-9]* pair\\(s\\) \\([1-9][0-9]* direct, 0 relayed\\): 0 succeeded, ")'
	jq_check "no-relay, symmetric: $h's pairs are all direct, checked, none succeeded" "$js" \
		'.why_not_up.pairs | length > 0 and all(.type == "host" or .type == "srflx" or .type == "prflx") and all(.state != "succeeded") and (map(.checks) | add > 0)'
	check "no-relay, symmetric: $h logged no link up and no relay candidate" \
		bash -c "! grep -q 'link up' '${E2E_LOG[$h]}' && ! grep -q 'gathered .* [1-9][0-9]* relay candidates' '${E2E_LOG[$h]}'"
done
st=$(e2e_status n2)
echo "$st" | sed 's/^/# /'
check "no-relay, symmetric: status prints why n1 is not up" grep -q '^  n1: not up: --no-relay ' <<<"$st"

# SIGTERM to all at once (so a sanitizer's exit report lands in the logs
# before e2e_finish reads them); each exits 0.
for h in r1 r2 n1 n2 d1 d2 v1 v2 v3; do kill -TERM "${E2E_PID[$h]}" 2>/dev/null || true; done
bad=
for h in r1 r2 n1 n2 d1 d2 v1 v2 v3; do
	rc=0
	wait "${E2E_PID[$h]}" 2>/dev/null || rc=$?
	[[ $rc == 0 ]] || bad+=" $h:$rc"
done
check "every client exits 0 on SIGTERM${bad:+ (not:$bad)}" test -z "$bad"
e2e_finish
