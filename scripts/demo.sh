#!/usr/bin/env bash
# The local demo (`make run`), as root, in two parts.
# Part 1: a coordinator on loopback with a fresh secret, each of its
# services at work: health and readiness, a signed publish and a poll that
# acknowledges it, a TURN credential, a STUN binding and a TURN relay
# allocation with data.
# Part 2: the main job, in network namespaces built by tests/netlab
# (198.18.0.0/15 only): a coordinator on a public host, two workers behind
# NATs, a mesh-client on each; the link comes up (both `mesh-client status`
# tables), then a TCP line, a 1 MiB file over TCP and a UDP datagram go
# from host a to an app on host b through the forwarded port, and the app
# shows the source address it saw (CONTRACT section 5).
# Everything it starts is stopped and every namespace removed on exit,
# failure or Ctrl-C (netlab's traps). DEMO_KEEP=1 leaves it all running at
# the end until Ctrl-C.
set -euo pipefail
trap 'printf "\033[1;31mdemo: failed at line %s: %s\033[0m\n" "$LINENO" "$BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
HTTP=${DEMO_HTTP_PORT:-7000}
STUN=${DEMO_STUN_PORT:-3478}
TLS=${DEMO_TLS_PORT:-5349}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
part() { printf '\n\033[1;7m %s \033[0m\n' "$*"; }
die() {
	printf '\033[1;31mdemo: %s\033[0m\n' "$*" >&2
	exit 1
}

# ------------------------------------------------------------ preflight
# Part 2 needs root and network namespaces; say so before anything runs.
if [[ $(id -u) -ne 0 ]]; then
	die "must run as root: part 2 builds network namespaces (sudo make run)"
fi
missing=()
for t in "$BIN/coordinator" "$BIN/mesh-client" "$BIN/meshreq" openssl curl socat \
	turnutils_stunclient turnutils_uclient turnutils_peer ip iptables tc ss setsid \
	timeout sha256sum cmp; do
	if [[ $t == */* ]]; then [[ -x $t ]] || missing+=("$t"); else command -v "$t" >/dev/null || missing+=("$t"); fi
done
((${#missing[@]} == 0)) || die "missing: ${missing[*]} (run: make deps && make)"
# A probe namespace, named like netlab's (nl<pid>-...) so that
# netlab_sweep_stale would remove it should this shell die right here.
probe=nl$$-0000-demo-probe
if ! ip netns add "$probe" 2>/dev/null; then
	die "this machine cannot make network namespaces (ip netns add failed): part 2 needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN on the host, which e.g. an unprivileged container does not give"
fi
ip netns del "$probe"

# netlab (via the e2e tests' helpers) owns the traps from here on: every
# namespace and every process in them goes at exit, failure or signal;
# demo_cleanup stops what part 1 started in this namespace.
NETLAB_BIN=$BIN
source tests/client/e2e/lib.sh
coord='' peer=''
demo_cleanup() {
	local p
	for p in $peer $coord; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	return 0
}
e2e_init
netlab_on_cleanup demo_cleanup
work=$NETLAB_DIR/demo
mkdir -p "$work"

# ------------------------------------------------------------ part 1
part "Part 1: the coordinator alone, on loopback"
(umask 077; openssl rand -hex 32 >"$work/secret")
step "starting bin/coordinator on 127.0.0.1 (HTTP $HTTP, STUN/TURN $STUN, TURN/TLS $TLS)"
"$BIN/coordinator" --secret-file "$work/secret" --listen 127.0.0.1 --http-port "$HTTP" \
	--stun-port "$STUN" --tls-port "$TLS" --relay-ports 49200-49299 \
	--relay-allow 127.0.0.1/32 --node-id demo 2>"$NETLAB_DIR/0-loopback-coordinator.log" &
coord=$!
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$HTTP/v1/ready" >/dev/null && break
	kill -0 "$coord" 2>/dev/null || die "bin/coordinator exited (is 127.0.0.1:$HTTP, $STUN or $TLS in use?)"
	sleep 0.1
done
curl -sf "http://127.0.0.1:$HTTP/v1/ready" >/dev/null || die "bin/coordinator not ready on 127.0.0.1:$HTTP after 10 s"
grep -o 'coordinator [0-9.]* (standalone) up: .*' "$NETLAB_DIR/0-loopback-coordinator.log" | fold -s -w 76 | sed 's/^/  /; s/ *$//'

# req ARGS...: one signed request (bin/meshreq); prints "HTTP <status> <body>".
req() {
	local body
	body=$("$BIN/meshreq" --secret-file "$work/secret" "$@" 2>"$work/req.status")
	echo "$(cat "$work/req.status") $body"
}
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
wait "$peer" 2>/dev/null || true
peer=

step "metrics excerpt"
curl -s "$U/metrics" | grep -E '^mesh_(http_requests_total|mailbox_queued|turn_)' | head -8

# ------------------------------------------------------------ part 2
part "Part 2: two workers behind NATs, linked by mesh-client"
step "the network (network namespaces, tests/netlab)"
netlab_nat nat-a 198.18.0.101 eim 198.18.1.0/24
netlab_host_behind nat-a a 198.18.1.10
netlab_nat nat-b 198.18.0.102 eim 198.18.2.0/24
netlab_host_behind nat-b b 198.18.2.10
cat <<EOF
  coord  198.18.0.10    public host: bin/coordinator (signaling, STUN/TURN)
  nat-a  198.18.0.101   NAT (endpoint-independent mapping) for 198.18.1.0/24
  a      198.18.1.10    worker w1, behind nat-a
  nat-b  198.18.0.102   NAT (endpoint-independent mapping) for 198.18.2.0/24
  b      198.18.2.10    worker w2, behind nat-b
  (a and b can reach only the public segment, through their NATs, and
   cannot reach each other's private addresses)
EOF

step "bin/coordinator on coord ($E2E_COORD_URL)"
e2e_coordinator_up || die "the coordinator on coord did not answer $E2E_COORD_URL/v1/ready within 20 s"
echo "ready: $(netlab_exec coord curl -s "$E2E_COORD_URL/v1/ready")"

PEERS='{"peers":[{"id":"w1","ports":[18000,18100,18200]},{"id":"w2","ports":[18001,18101,18201]}]}'
step "the peer table both clients get (CONTRACT section 5, identity-port plan)"
echo "  $PEERS"
cat <<'EOF'
  Each worker's apps use its own ports on 127.0.0.1 (w1: 18000 18100 18200,
  w2: 18001 18101 18201). mesh-client on a binds w2's ports on a's
  127.0.0.1 (TCP and UDP), so an app on a reaches w2's app by talking to
  127.0.0.1:18001, and that app sees it come from 127.0.0.1:18000, w1's own.
EOF

# The apps on b: a line echo (TCP 18001), a file sink (TCP 18201) and a
# datagram echo (UDP 18101); each tells the source address it saw.
e2e_tcp_echo b 18001
e2e_udp_echo b 18101
cat >"$work/sink.sh" <<EOF
echo "\$SOCAT_PEERADDR:\$SOCAT_PEERPORT" >$work/file.src
cat >$work/file.part && mv $work/file.part $work/file.recv
EOF
netlab_spawn b socat -u "TCP-LISTEN:18201,bind=127.0.0.1,reuseaddr" "SYSTEM:sh $work/sink.sh"
netlab_wait_listen b tcp 18201 5

step "mesh-client w1 on a, w2 on b (same secret, same coordinator)"
t0=$(now_ms)
e2e_start a w1 "$PEERS"
e2e_start b w2 "$PEERS"
if ! e2e_wait_all 30 a b; then
	e2e_status a || true
	e2e_status b || true
	die "the link between w1 and w2 did not come up within 30 s (client logs follow)"
fi
echo "link up on both sides $(($(now_ms) - t0)) ms after the clients started"
for h in a b; do
	echo "  $h: $(grep -o 'link up: .*' "${E2E_LOG[$h]}" | tail -1)"
done

step "mesh-client status on a (w1)"
e2e_status a
step "mesh-client status on b (w2)"
e2e_status b

# one_reply CMD...: CMD's output once it is not empty (3 tries: a UDP
# datagram may be lost like any other).
one_reply() {
	local out='' i
	for i in 1 2 3; do
		out=$("$@" || true)
		[[ -n $out ]] && break
		sleep 0.3
	done
	[[ -n $out ]] || return 1
	echo "$out"
}

# show PROTO MSG REPLY WANT_SRC: what was sent, what b's app got and from
# which source (its answer says: "PROTO b LINE SOURCE"), what came back.
show() {
	local proto=$1 msg=$2 reply=$3 want=$4 src
	src=${reply##* }
	printf '  a sent            "%s"\n' "$msg"
	printf "  b's app received  \"%s\" from %s\n" "$msg" "$src"
	printf '  a got back        "%s"\n' "$reply"
	[[ $reply == "$proto b $msg $src" ]] || die "unexpected answer through the mesh: \"$reply\""
	[[ $src == "$want" ]] || die "b's app saw source $src, not $want (CONTRACT section 5)"
}

step "TCP: an app on a connects to 127.0.0.1:18001 -> w2's app on b (a line echo)"
msg="hello from w1 on host a"
reply=$(one_reply e2e_tcp a 18001 "$msg") || die "no answer through the forwarded TCP port 18001"
show tcp "$msg" "$reply" 127.0.0.1:18000
echo "  -> source 127.0.0.1:18000, w1's own port: preserved across the mesh (CONTRACT section 5)"

step "TCP: a 1 MiB file from a to w2's app on b (socat, 127.0.0.1:18201)"
head -c 1048576 /dev/urandom >"$work/file.sent"
t0=$(now_ms)
netlab_exec a socat -u "FILE:$work/file.sent" TCP:127.0.0.1:18201
netlab_wait_until 10 "the file to arrive on b" test -e "$work/file.recv" ||
	die "the file did not arrive on b within 10 s"
ms=$(($(now_ms) - t0))
sum_sent=$(sha256sum <"$work/file.sent" | cut -c1-16)
sum_recv=$(sha256sum <"$work/file.recv" | cut -c1-16)
printf '  a sent            %s bytes, sha256 %s...\n' "$(stat -c %s "$work/file.sent")" "$sum_sent"
printf "  b's app received  %s bytes, sha256 %s... from %s, in %s ms\n" \
	"$(stat -c %s "$work/file.recv")" "$sum_recv" "$(cat "$work/file.src")" "$ms"
cmp -s "$work/file.sent" "$work/file.recv" || die "the file arrived changed"
[[ $(cat "$work/file.src") == 127.0.0.1:18200 ]] || die "b's app saw source $(cat "$work/file.src"), not 127.0.0.1:18200"
echo "  -> identical bytes, from w1's own port 127.0.0.1:18200"

step "UDP: a datagram from a's 127.0.0.1:18100 to 127.0.0.1:18101 -> w2's app on b, and its answer back"
msg="ping from w1 on host a"
reply=$(one_reply e2e_udp a 18101 18100 "$msg") || die "no answer through the forwarded UDP port 18101"
show udp "$msg" "$reply" 127.0.0.1:18100
echo "  -> source 127.0.0.1:18100 preserved; the answer came back to a through the mesh too"

step "mesh-client status on a after the traffic (application bytes each way)"
e2e_status a

if [[ ${DEMO_KEEP:-0} == 1 ]]; then
	step "everything keeps running (Ctrl-C stops it and removes the namespaces)"
	echo "  ip netns exec $(netlab_ns a) $BIN/mesh-client status"
	echo "  ip netns exec $(netlab_ns b) $BIN/mesh-client status"
	echo "  curl -s $U/metrics"
	keep=1
	trap 'keep=0' INT TERM
	while ((keep)); do sleep 1 || true; done
	echo
fi
step "demo done: stopping the clients and coordinators, removing the namespaces"
n=$(ip netns list | grep -c "^$NETLAB_PREFIX")
netlab_cleanup 0 || die "cleanup left something behind (see above)"
left=$(ip netns list | grep -c "^$NETLAB_PREFIX" || true)
((left == 0)) || die "$left namespaces of this demo are left"
echo "  $n namespaces removed, every process stopped"
