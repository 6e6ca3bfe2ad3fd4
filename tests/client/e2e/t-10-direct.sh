#!/usr/bin/env bash
# t-10-direct: two peers behind endpoint-independent NATs. The link comes
# up on a direct path (host/srflx/prflx); TCP and UDP are forwarded both
# ways with the sender's identity address as source; the admin API, the
# status command and the logs say what they should; SIGTERM closes the
# link at once on the other side and exits 0, and the peer is back within
# 5 s of its restart.
source "$(dirname "$0")/lib.sh"
e2e_init
netlab_nat n-e1 198.18.0.101 eim 198.18.1.0/24
netlab_host_behind n-e1 e1 198.18.1.10
netlab_nat n-e2 198.18.0.102 eim 198.18.2.0/24
netlab_host_behind n-e2 e2 198.18.2.10
e2e_coordinator

PEERS='{"peers":[{"id":"w1","ports":[18000,18100,18200]},{"id":"w2","ports":[18001,18101,18201]}]}'
e2e_tcp_echo e1 18000
e2e_tcp_echo e2 18001
e2e_udp_echo e2 18101
e2e_udp_echo e1 18200

t0=$(now_ms)
e2e_start e1 w1 "$PEERS"
e2e_start e2 w2 "$PEERS"
if e2e_wait_all 15 e1 e2; then
	ok "link up both sides in $(($(now_ms) - t0)) ms from start"
else
	notok "link up" "not up within 15 s"
	e2e_status e1 || true
	e2e_status e2 || true
	e2e_finish
	exit 1
fi

for h in e1 e2; do
	p=$(e2e_field "$h" "$([[ $h == e1 ]] && echo w2 || echo w1)" 3)
	case $p in
	host | srflx | prflx) ok "$h: direct path ($p)" ;;
	*) notok "$h: direct path" "path is '$p'" ;;
	esac
done

# TCP both ways; the app sees the sender's identity port as source.
e2e_expect "tcp w1->w2, source 127.0.0.1:18000" "tcp e2 hello 127.0.0.1:18000" e2e_tcp e1 18001 hello
e2e_expect "tcp w2->w1, source 127.0.0.1:18001" "tcp e1 hi 127.0.0.1:18001" e2e_tcp e2 18000 hi
# UDP both ways, the answer coming back through the mesh too.
e2e_expect "udp w1->w2 and back, source 127.0.0.1:18100" "udp e2 ping 127.0.0.1:18100" e2e_udp e1 18101 18100 ping
e2e_expect "udp w2->w1 and back, source 127.0.0.1:18201" "udp e1 pong 127.0.0.1:18201" e2e_udp e2 18200 18201 pong

# Operations: status table, /v1/status, /metrics, logs.
st=$(e2e_status e1)
echo "$st" | sed 's/^/# /'
check "status shows w2 up with an RTT and epoch" \
	awk '$1 == "w2" && $2 == "up" && $4 ~ /ms$/ && $8 > 0 { f = 1 } END { exit !f }' <<<"$st"
js=$(e2e_json e1 /v1/status)
check "/v1/status has path, candidates, rtt, bytes, epoch, uptime" \
	grep -q '"state":"up".*"local":"[a-z]* 198\.18\.[0-9.:]*".*"remote":"[a-z]* 198\.18\.[0-9.:]*".*"rtt_ms".*"bytes_tx":[1-9].*"uptime_s"' <<<"$js"
m=$(e2e_json e1 /metrics)
check "/metrics: link up, bytes counted" \
	grep -q '^mesh_client_link_up{peer="w2"} 1$' <<<"$m"
check "/metrics: forward bytes" grep -q '^mesh_client_forward_bytes_total{peer="w2",proto="tcp",dir="tx"} [1-9]' <<<"$m"
d1=$(grep -o 'digest [0-9a-f]*' "${E2E_LOG[e1]}" | head -1)
d2=$(grep -o 'digest [0-9a-f]*' "${E2E_LOG[e2]}" | head -1)
check "both log the same peer-table digest ($d1)" test -n "$d1" -a "$d1" == "$d2"
check "log: link up with path type and RTT" e2e_log_has e1 'link up: [a-z-]* path, rtt [0-9]* ms'

# SIGTERM: exit 0, the peer learns at once, and redials when it returns.
t0=$(now_ms)
e2e_term e2
check "SIGTERM exits 0 (rc=$E2E_RC) in $(($(now_ms) - t0)) ms" test "$E2E_RC" = 0
check "SIGTERM: w2 logged its bye" e2e_log_has e2 'telling peers'
if netlab_wait_until 3 "w1 sees w2 down" grep -q 'link down' "${E2E_LOG[e1]}"; then
	ok "w1 saw the link down within 3 s of SIGTERM: $(grep -o 'link down: .*' "${E2E_LOG[e1]}" | head -1)"
else
	notok "w1 saw the link down" "no 'link down' within 3 s"
fi
t0=$(now_ms)
e2e_restart e2
if e2e_wait_up 5 e1 w2 >/dev/null && e2e_wait_up 2 e2 w1 >/dev/null; then
	ok "after SIGTERM and restart, back in $(($(now_ms) - t0)) ms (limit 5000)"
else
	notok "back after SIGTERM" "not up within 5 s of the restart"
fi
e2e_expect "tcp w1->w2 after the restart" "tcp e2 again 127.0.0.1:18000" e2e_tcp e1 18001 again
check "log: up again, with how long it was down" e2e_log_has e1 'link up: .* after .* down'

e2e_term e1
check "SIGTERM e1 exits 0" test "$E2E_RC" = 0
e2e_finish
