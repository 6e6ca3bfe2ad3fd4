#!/usr/bin/env bash
# The local demo (`make run`): starts a coordinator on loopback with a
# fresh secret, then shows each of its services at work: health and
# readiness, a signed publish and a poll that acknowledges it, a TURN
# credential, a STUN binding and a TURN relay allocation with data.
# DEMO_KEEP=1 leaves the coordinator running in the foreground after.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
HTTP=${DEMO_HTTP_PORT:-7000}
STUN=${DEMO_STUN_PORT:-3478}
TLS=${DEMO_TLS_PORT:-5349}
work=$(mktemp -d /tmp/mesh-demo.XXXXXX)
coord=
cleanup() {
	[[ -n $coord ]] && kill "$coord" 2>/dev/null && wait "$coord" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

(umask 077; openssl rand -hex 32 >"$work/secret")
step "starting bin/coordinator on 127.0.0.1 (HTTP $HTTP, STUN/TURN $STUN, TURN/TLS $TLS)"
"$BIN/coordinator" --secret-file "$work/secret" --listen 127.0.0.1 --http-port "$HTTP" \
	--stun-port "$STUN" --tls-port "$TLS" --relay-ports 49200-49299 \
	--relay-allow 127.0.0.1/32 --node-id demo &
coord=$!
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$HTTP/v1/ready" >/dev/null && break
	sleep 0.1
done

req() { "$BIN/meshreq" --secret-file "$work/secret" "$@"; echo; }
U=http://127.0.0.1:$HTTP

step "health and readiness (no authentication)"
curl -s "$U/v1/health"; echo
curl -s "$U/v1/ready"; echo

step "w1 publishes an offer for w2 (signed request, end-to-end psig)"
psig=$(printf 'w1\nw2\n1\noffer\nhello from w1' |
	openssl dgst -sha256 -mac HMAC -macopt hexkey:"$(openssl kdf -keylen 32 -kdfopt digest:SHA256 \
		-kdfopt hexkey:"$(cat "$work/secret")" -kdfopt info:mesh/v1/e2e HKDF | tr -d ':' | tr 'A-F' 'a-f')" |
	awk '{print $NF}')
req --peer w1 --header 'Content-Type: application/json' POST "$U/v1/publish" \
	"{\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"hello from w1\",\"psig\":\"$psig\"}"

step "w2 polls its mailbox, then acknowledges with the cursor"
answer=$(req --peer w2 GET "$U/v1/poll?wait=0")
echo "$answer"
cursor=$(sed -n 's/.*"cursor":"\([^"]*\)".*/\1/p' <<<"$answer")
req --peer w2 GET "$U/v1/poll?wait=0&cursor=$cursor"

step "a TURN REST credential for w1"
cred=$(req --peer w1 GET "$U/v1/turn")
echo "$cred"
user=$(sed -n 's/.*"username":"\([^"]*\)".*/\1/p' <<<"$cred")
pass=$(sed -n 's/.*"password":"\([^"]*\)".*/\1/p' <<<"$cred")

step "STUN binding request (coturn's turnutils_stunclient)"
turnutils_stunclient -p "$STUN" 127.0.0.1 2>&1 | grep -i "reflexive" | head -1

step "TURN allocation over TCP, echoed through the relay by a peer (turnutils_uclient, turnutils_peer)"
peer_port=${DEMO_PEER_PORT:-3480}
turnutils_peer -L 127.0.0.1 -p "$peer_port" >/dev/null 2>&1 &
peer=$!
sleep 0.3
turnutils_uclient -t -p "$STUN" -u "$user" -w "$pass" -e 127.0.0.1 -r "$peer_port" -n 5 -m 1 -l 120 127.0.0.1 2>&1 |
	grep -E "Total transmit time|Total lost packets|start_mclient: tot_send_bytes" | head -4 || true
kill "$peer" 2>/dev/null || true

step "metrics excerpt"
curl -s "$U/metrics" | grep -E '^mesh_(http_requests_total|mailbox_queued|turn_)' | head -8

if [[ ${DEMO_KEEP:-0} == 1 ]]; then
	step "coordinator keeps running (Ctrl-C stops it)"
	wait "$coord"
fi
step "demo done"
