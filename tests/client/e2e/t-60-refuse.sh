#!/usr/bin/env bash
# t-60-refuse: what must not get into a link. A signaling message whose
# psig is wrong (a coordinator forging or altering an offer) is dropped and
# the live link stays as it is; an offer whose certificate fingerprint is
# not the key the sender then uses in the QUIC handshake (a handshake from
# an unknown key) is refused on both sides, no link comes up and nothing is
# forwarded; the honest peer is back at once afterwards.
source "$(dirname "$0")/lib.sh"
e2e_init
netlab_nat n-e1 198.18.0.101 eim 198.18.1.0/24
netlab_host_behind n-e1 e1 198.18.1.10
netlab_nat n-e2 198.18.0.102 eim 198.18.2.0/24
netlab_host_behind n-e2 e2 198.18.2.10
e2e_coordinator
PEERS='{"peers":[{"id":"w1","ports":[18000]},{"id":"w2","ports":[18001]}]}'
e2e_tcp_echo e1 18000
e2e_tcp_echo e2 18001
e2e_start e1 w1 "$PEERS"
e2e_start e2 w2 "$PEERS"
if ! e2e_wait_all 15 e1 e2; then
	notok "link up" "not within 15 s"
	e2e_finish
	exit 1
fi
ok "link up"

# awk reads to the end: leaving early would break the pipe under curl
# (exit 23 under pipefail).
metric() { e2e_json "$1" /metrics | awk -v m="$2" '$1 == m && !done { print $2; done = 1 }'; }

# 1. A forged offer: correctly authenticated towards the coordinator (the
# test holds the signal key, as a coordinator would see the request), but
# its psig is not made with the e2e key.
ep=$(e2e_field e2 w1 8)
downs0=$(e2e_json e2 /v1/status | awk 'match($0, /"downs":[0-9]+/) && !done { print substr($0, RSTART, RLENGTH); done = 1 }')
body="{\"from\":\"w1\",\"to\":\"w2\",\"epoch\":$ep,\"kind\":\"offer\",\"payload\":\"{\\\"ice\\\":\\\"mesh-ice:1\\\",\\\"fp\\\":\\\"$(printf '%064d' 0)\\\"}\",\"psig\":\"$(printf 'ab%.0s' $(seq 32))\"}"
if netlab_exec e1 "$E2E_MESHREQ" --secret-file "$E2E_SECRET" --peer w1 POST "$E2E_COORD_URL/v1/publish" "$body" >/dev/null; then
	ok "forged offer accepted by the coordinator (it cannot check psig)"
else
	notok "forged offer published" "meshreq failed"
fi
netlab_wait_until 5 "the forged offer is dropped" bash -c \
	"[[ \$(ip netns exec $(netlab_ns e2) curl -fsS http://127.0.0.1:7070/metrics | awk '\$1 == \"mesh_client_signal_dropped_total{reason=\\\"psig\\\"}\" { print \$2 }') -ge 1 ]]" &&
	ok "w2 dropped the message with the wrong psig (counted in /metrics)" ||
	notok "w2 dropped the forged message" "psig drop counter still 0"
sleep 0.5
check "the link was not touched: still up" e2e_up e2 w1
check "... same epoch ($ep)" test "$(e2e_field e2 w1 8)" = "$ep"
check "... no outage ($downs0)" test "$(e2e_json e2 /v1/status | awk 'match($0, /"downs":[0-9]+/) && !done { print substr($0, RSTART, RLENGTH); done = 1 }')" = "$downs0"
e2e_expect "traffic still flows" "tcp e2 a 127.0.0.1:18000" e2e_tcp e1 18001 a

# 2. An offer with a fingerprint that is not the key w1 then handshakes
# with: w1 is restarted with MESH_TEST_OFFER_FP (a test hook in link.c).
e2e_term e1
FAKE=$(openssl rand -hex 32)
af0=$(metric e2 mesh_client_quic_auth_failed_total)
ups0=$(grep -c 'link up' "${E2E_LOG[e2]}")
MESH_TEST_OFFER_FP=$FAKE e2e_restart e1
end=$((SECONDS + 12))
while ((SECONDS < end)); do
	af=$(metric e2 mesh_client_quic_auth_failed_total)
	((${af:-0} > ${af0:-0})) && break
	sleep 0.2
done
check "w2 refused the QUIC handshake from a key not in the offer ($af0 -> $af)" \
	test "${af:-0}" -gt "${af0:-0}"
check "w2 logged the refusal" e2e_log_has e2 'QUIC handshake refused'
check "w1 saw its handshake refused too" e2e_log_has e1 'QUIC handshake refused'
st=$(e2e_field e2 w1 2)
check "no link with the impostor key (state $st)" test "$st" != up
got=$(e2e_tcp e2 18000 b || true)
check "nothing forwarded to it (got '$got')" test -z "$got"
check "w2 brought no link up with the impostor key" \
	test "$(grep -c 'link up' "${E2E_LOG[e2]}")" = "$ups0"

# 3. The honest w1 again: back at once.
e2e_term e1
t0=$(now_ms)
e2e_restart e1
if e2e_wait_up 5 e1 w2 >/dev/null && e2e_wait_up 2 e2 w1 >/dev/null; then
	ok "honest w1 back in $(($(now_ms) - t0)) ms after the refusals"
else
	notok "honest w1 back" "not within 5 s"
fi
e2e_expect "traffic flows again" "tcp e2 c 127.0.0.1:18000" e2e_tcp e1 18001 c
e2e_finish
