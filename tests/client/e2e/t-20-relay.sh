#!/usr/bin/env bash
# t-20-relay: two pairs at once on one network. Both peers of one pair
# behind symmetric NATs: relay-udp is selected; both of the other behind
# NATs that drop all UDP: relay-tcp or relay-tls through the coordinator.
# Traffic flows over both (TCP and UDP forwarding), and the admin API says
# why each link is relayed (the direct pairs tried and how they failed).
source "$(dirname "$0")/lib.sh"
e2e_init
netlab_nat n-s1 198.18.0.103 symmetric 198.18.3.0/24
netlab_host_behind n-s1 s1 198.18.3.10
netlab_nat n-s2 198.18.0.104 symmetric 198.18.4.0/24
netlab_host_behind n-s2 s2 198.18.4.10
netlab_nat n-u1 198.18.0.105 udp-drop 198.18.5.0/24
netlab_host_behind n-u1 u1 198.18.5.10
netlab_nat n-u2 198.18.0.106 udp-drop 198.18.6.0/24
netlab_host_behind n-u2 u2 198.18.6.10
e2e_coordinator

PS='{"peers":[{"id":"s1","ports":[18000,18100]},{"id":"s2","ports":[18001,18101]}]}'
PU='{"peers":[{"id":"u1","ports":[18000,18100]},{"id":"u2","ports":[18001,18101]}]}'
for h in s2 u2; do
	e2e_tcp_echo "$h" 18001
	e2e_udp_echo "$h" 18101
done
t0=$(now_ms)
e2e_start s1 s1 "$PS"
e2e_start s2 s2 "$PS"
e2e_start u1 u1 "$PU"
e2e_start u2 u2 "$PU"

if e2e_wait_all 20 s1 s2; then
	ok "symmetric pair up in $(($(now_ms) - t0)) ms"
else
	notok "symmetric pair up" "not within 20 s"
fi
if e2e_wait_all 25 u1 u2; then
	ok "udp-drop pair up in $(($(now_ms) - t0)) ms"
else
	notok "udp-drop pair up" "not within 25 s"
fi

p=$(e2e_field s1 s2 3)
check "symmetric: relay-udp selected (got $p)" test "$p" = relay-udp
p=$(e2e_field s2 s1 3)
check "symmetric, other side: relay-udp (got $p)" test "$p" = relay-udp
p=$(e2e_field u1 u2 3)
check "udp-drop: relay-tcp or relay-tls selected (got $p)" test "$p" = relay-tcp -o "$p" = relay-tls
p=$(e2e_field u2 u1 3)
check "udp-drop, other side: relay-tcp or relay-tls (got $p)" test "$p" = relay-tcp -o "$p" = relay-tls

for pair in "s1 s2" "u1 u2"; do
	set -- $pair
	e2e_expect "$1->$2 tcp through the relay" "tcp $2 hello 127.0.0.1:18000" e2e_tcp "$1" 18001 hello
	e2e_expect "$1->$2 udp through the relay and back" "udp $2 ping 127.0.0.1:18100" e2e_udp "$1" 18101 18100 ping
done

js=$(e2e_json s1 /v1/status)
check "/v1/status explains why s1-s2 is relayed" \
	grep -q '"why_relayed":{"summary":"[0-9]* direct pair(s) tried' <<<"$js"
check "... listing the direct pairs with their errors" \
	grep -q '"type":"\(host\|srflx\)","state":"\(failed\|cancelled\)","error":"[^"][^"]*"' <<<"$js"
echo "# $(grep -o '"summary":"[^"]*"' <<<"$js" | head -1)"
js=$(e2e_json u1 /v1/status)
check "/v1/status explains why u1-u2 is relayed" grep -q '"why_relayed":{"summary":"' <<<"$js"
echo "# $(grep -o '"summary":"[^"]*"' <<<"$js" | head -1)"
st=$(e2e_status s1)
check "status prints the relay reason" grep -q '^  s2: relayed: ' <<<"$st"
e2e_finish
