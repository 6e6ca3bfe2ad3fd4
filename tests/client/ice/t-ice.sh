#!/usr/bin/env bash
# t-ice.sh: client/ice.c between two hosts of a netlab network, through the
# real coordinator (STUN, TURN over UDP/TCP/TLS) on public host coord
# (198.18.0.10). Each scenario is a pair of $NETLAB_BIN/ice-driver processes
# that swap ICE descriptions through files in $NETLAB_DIR/<scenario>/ and
# then pass "ping"/"pong" datagrams both ways over the selected path:
#   eim        both behind endpoint-independent NATs: a direct pair
#              (host, srflx or prflx) is selected
#   symmetric  both behind symmetric NATs: relay-udp is selected
#   udp-drop   both behind NATs that drop all UDP: relay-tcp or relay-tls
#   eim-open   one behind an eim-open NAT (no inbound filter on the NAT
#              itself), the other on a public host: direct (prflx/srflx/host)
#   same-nat   two hosts behind one NAT: host
#   lossy      both behind eim NATs with 10 % loss each way on both hosts
#              (relays off: checks must find the direct pair through loss)
#              links and 25 ms of one-way delay on one NAT: a direct pair
#   tls-only   both behind udp-drop NATs that also drop TCP to port 3478
#              (TURN over plain TCP): relay-tls
#   relay-only both behind eim NATs, both --relay-only: relay-udp
#   no-relay   both behind symmetric NATs, both --no-relay: no pair at all,
#              failed() says so and no relayed pair was tried
#   dead       like eim, then all traffic through one NAT is dropped
#              (iptables in its namespace): both drivers report failed()
#              with "consent expired" within 15 s of the drop
# The scenarios run at the same time on one network. Prints "ok"/"not ok"
# per check and "N passed, M failed"; the netlab traps remove namespaces
# and processes on every exit. Arguments: scenario names (default: all).
set -euo pipefail
# shellcheck source=tests/netlab/netlab.sh
source "$(dirname "$0")/../../netlab/netlab.sh"

DRIVER=$NETLAB_BIN/ice-driver
COORDINATOR=$NETLAB_BIN/coordinator
netlab_require "$DRIVER" "$COORDINATOR" openssl curl iptables
ALL=(eim symmetric udp-drop tls-only lossy eim-open same-nat relay-only no-relay dead)
SCEN=("$@")
((${#SCEN[@]})) || SCEN=("${ALL[@]}")
for s in "${SCEN[@]}"; do
	[[ " ${ALL[*]} " == *" $s "* ]] || {
		echo "t-ice: unknown scenario '$s' (known: ${ALL[*]})" >&2
		exit 2
	}
done
want() { [[ " ${SCEN[*]} " == *" $1 "* ]]; }

netlab_init

COORD=198.18.0.10
SECRET=$NETLAB_DIR/root.secret
(umask 077 && openssl rand -hex 32 >"$SECRET")

pass=0 fail=0 n=0
ok() {
	n=$((n + 1)) pass=$((pass + 1))
	echo "ok $n - $1"
}
notok() {
	n=$((n + 1)) fail=$((fail + 1))
	echo "not ok $n - $1: $2"
}

# --- the network ---------------------------------------------------------
netlab_public_host coord "$COORD"
if want eim; then
	netlab_nat n-e1 198.18.0.101 eim 198.18.1.0/24
	netlab_host_behind n-e1 e1 198.18.1.10
	netlab_nat n-e2 198.18.0.102 eim 198.18.2.0/24
	netlab_host_behind n-e2 e2 198.18.2.10
fi
if want symmetric; then
	netlab_nat n-s1 198.18.0.103 symmetric 198.18.3.0/24
	netlab_host_behind n-s1 s1 198.18.3.10
	netlab_nat n-s2 198.18.0.104 symmetric 198.18.4.0/24
	netlab_host_behind n-s2 s2 198.18.4.10
fi
if want udp-drop; then
	netlab_nat n-u1 198.18.0.105 udp-drop 198.18.5.0/24
	netlab_host_behind n-u1 u1 198.18.5.10
	netlab_nat n-u2 198.18.0.106 udp-drop 198.18.6.0/24
	netlab_host_behind n-u2 u2 198.18.6.10
fi

if want dead; then
	netlab_nat n-d1 198.18.0.107 eim 198.18.7.0/24
	netlab_host_behind n-d1 d1 198.18.7.10
	netlab_nat n-d2 198.18.0.108 eim 198.18.8.0/24
	netlab_host_behind n-d2 d2 198.18.8.10
fi
if want eim-open; then
	netlab_nat n-o1 198.18.0.109 eim-open 198.18.9.0/24
	netlab_host_behind n-o1 o1 198.18.9.10
	netlab_public_host o2 198.18.0.20
fi
if want same-nat; then
	netlab_nat n-m 198.18.0.110 eim 198.18.10.0/24
	netlab_host_behind n-m m1 198.18.10.10
	netlab_host_behind n-m m2 198.18.10.11
fi

if want lossy; then
	netlab_nat n-l1 198.18.0.117 eim 198.18.17.0/24
	netlab_host_behind n-l1 l1 198.18.17.10
	netlab_nat n-l2 198.18.0.118 eim 198.18.18.0/24
	netlab_host_behind n-l2 l2 198.18.18.10
	netlab_loss l1 eth0 10 both
	netlab_loss l2 eth0 10 both
	# l1's first STUN Binding request is refused by its own host (EPERM,
	# as a local filter's DROP reports it): a lost packet, to be asked
	# again, not a failed server.
	_nl_do ip netns exec "$(netlab_ns l1)" iptables -w 5 -I OUTPUT -p udp -d "$COORD" --dport 3478 \
		-m statistic --mode nth --every 1000000 --packet 0 -j DROP
	# on the NAT's outside link: netlab_delay on a host behind a NAT
	# changes the NAT's lan0 bridge MAC (see the report in docs/ice.md)
	netlab_delay n-l2 eth0 25
fi
if want tls-only; then
	netlab_nat n-t1 198.18.0.115 udp-drop 198.18.15.0/24
	netlab_host_behind n-t1 t1 198.18.15.10
	netlab_nat n-t2 198.18.0.116 udp-drop 198.18.16.0/24
	netlab_host_behind n-t2 t2 198.18.16.10
	netlab_exec n-t1 iptables -I FORWARD 1 -p tcp --dport 3478 -j DROP
	netlab_exec n-t2 iptables -I FORWARD 1 -p tcp --dport 3478 -j DROP
fi
if want relay-only; then
	netlab_nat n-r1 198.18.0.111 eim 198.18.11.0/24
	netlab_host_behind n-r1 r1 198.18.11.10
	netlab_nat n-r2 198.18.0.112 eim 198.18.12.0/24
	netlab_host_behind n-r2 r2 198.18.12.10
fi
if want no-relay; then
	netlab_nat n-x1 198.18.0.113 symmetric 198.18.13.0/24
	netlab_host_behind n-x1 x1 198.18.13.10
	netlab_nat n-x2 198.18.0.114 symmetric 198.18.14.0/24
	netlab_host_behind n-x2 x2 198.18.14.10
fi

# --- the coordinator --------------------------------------------------------
netlab_spawn coord "$COORDINATOR" --secret-file "$SECRET" --listen "$COORD" \
	--relay-ports 49152-49407 --log-level "${ICE_COORD_LOG:-warn}"
COORD_PID=$NETLAB_LAST_PID
end=$((SECONDS + 20))
until NETLAB_TIMEOUT=3 netlab_exec coord curl -fsS -o /dev/null --max-time 2 \
	"http://$COORD:7000/v1/ready" 2>/dev/null; do
	if ! netlab_alive "$COORD_PID" || ((SECONDS >= end)); then
		notok coordinator "not ready at http://$COORD:7000/v1/ready"
		echo "$pass passed, $fail failed"
		exit 1
	fi
	sleep 0.1
done

# --- the drivers -------------------------------------------------------------
declare -A PID LOG
# ICE_DRIVER_FLAGS: extra driver options, e.g. "--log-level debug"
read -ra EXTRA <<<"${ICE_DRIVER_FLAGS:-}"
# start SCEN HOST ID PEER [FLAGS...]
start() {
	local scen=$1 host=$2 id=$3 peer=$4
	shift 4
	mkdir -p "$NETLAB_DIR/$scen"
	netlab_spawn "$host" "$DRIVER" --id "$id" --peer "$peer" \
		--dir "$NETLAB_DIR/$scen" --secret-file "$SECRET" \
		--coordinator "$COORD" "${EXTRA[@]}" "$@"
	PID[$id]=$NETLAB_LAST_PID
	LOG[$id]=$NETLAB_LAST_LOG
}

want eim && { start eim e1 e1 e2 --timeout 20; start eim e2 e2 e1 --timeout 20; }
want symmetric && { start symmetric s1 s1 s2 --timeout 25; start symmetric s2 s2 s1 --timeout 25; }
want udp-drop && { start udp-drop u1 u1 u2 --timeout 25; start udp-drop u2 u2 u1 --timeout 25; }
want eim-open && { start eim-open o1 o1 o2 --timeout 25; start eim-open o2 o2 o1 --timeout 25; }
want same-nat && { start same-nat m1 m1 m2 --timeout 20; start same-nat m2 m2 m1 --timeout 20; }
# --no-relay: the property here is that checks survive loss and find the
# direct pair; with relays allowed, a slow (sanitizer) build may pass the
# 2.5 s direct-first window and rightly settle on a relay instead.
want lossy && { start lossy l1 l1 l2 --no-relay --timeout 25; start lossy l2 l2 l1 --no-relay --timeout 25; }
want tls-only && { start tls-only t1 t1 t2 --timeout 25; start tls-only t2 t2 t1 --timeout 25; }
want relay-only && { start relay-only r1 r1 r2 --relay-only --timeout 20; start relay-only r2 r2 r1 --relay-only --timeout 20; }
want no-relay && { start no-relay x1 x1 x2 --no-relay --timeout 30; start no-relay x2 x2 x1 --no-relay --timeout 30; }
want dead && { start dead d1 d1 d2 --hold --timeout 60; start dead d2 d2 d1 --hold --timeout 60; }

field() { # field ID KEY: KEY=value from the driver's "connected" line
	sed -n "s/^connected .*\b$2=\([^ ]*\).*/\1/p" "${LOG[$1]}" | head -n1
}
waitexit() { # waitexit ID SECONDS: wait for the driver to end; sets RC
	local id=$1 end=$((SECONDS + $2))
	while netlab_alive "${PID[$id]}" && ((SECONDS < end)); do sleep 0.1; done
	if netlab_alive "${PID[$id]}"; then
		RC=running
	else
		RC=$(sed -n 's/^exit rc=//p' "${LOG[$id]}" | tail -n1)
		RC=${RC:-crashed}
	fi
}

# check_pair SCEN A B REGEX WHAT: both connected with a type matching REGEX
# and datagrams went both ways.
check_pair() {
	local scen=$1 a=$2 b=$3 re=$4 what=$5 ra rb ta tb
	waitexit "$a" 40
	ra=$RC
	waitexit "$b" 40
	rb=$RC
	ta=$(field "$a" type)
	tb=$(field "$b" type)
	echo "  $scen: $a type=${ta:-none} in $(field "$a" connect_ms) ms (checks $(field "$a" checks_ms) ms, rtt $(field "$a" rtt) ms), exit $ra;" \
		"$b type=${tb:-none} in $(field "$b" connect_ms) ms (checks $(field "$b" checks_ms) ms), exit $rb"
	if [[ $ta =~ ^($re)$ && $tb =~ ^($re)$ ]]; then
		ok "$scen: $what selected ($ta / $tb)"
	else
		notok "$scen" "expected $what, got '${ta:-none}' / '${tb:-none}'"
		grep -h '^pair\|^gather-errors\|^failed\|^timeout' "${LOG[$a]}" | sed "s/^/    $a: /" || true
	fi
	if grep -q '^datagrams ok' "${LOG[$a]}" && grep -q '^datagrams ok' "${LOG[$b]}" &&
		[[ $ra == 0 && $rb == 0 ]]; then
		ok "$scen: datagrams both ways"
	else
		notok "$scen" "datagrams did not flow both ways (exit $ra/$rb)"
	fi
}

want eim && check_pair eim e1 e2 'host|srflx|prflx' "a direct pair"
want same-nat && check_pair same-nat m1 m2 'host' "the host pair"
want eim-open && check_pair eim-open o1 o2 'host|srflx|prflx' "a direct pair"
want symmetric && check_pair symmetric s1 s2 'relay-udp' "relay-udp"
want udp-drop && check_pair udp-drop u1 u2 'relay-tcp|relay-tls' "relay-tcp or relay-tls"
want lossy && check_pair lossy l1 l2 'host|srflx|prflx' "a direct pair"
if want lossy; then
	if grep -q 'gathered 1 host, 1 srflx' "${LOG[l1]}"; then
		ok "lossy: l1's srflx candidate gathered although its first STUN request was refused"
	else
		notok "lossy: l1 srflx" "$(grep -h 'gathered\|gather-errors' "${LOG[l1]}" | head -n 3 | tr '\n' ' ')"
	fi
fi
want tls-only && check_pair tls-only t1 t2 'relay-tls' "relay-tls"
want relay-only && check_pair relay-only r1 r2 'relay-udp' "relay-udp"

if want no-relay; then
	waitexit x1 35
	r1=$RC
	waitexit x2 35
	r2=$RC
	for id in x1 x2; do
		line=$(grep -m1 '^failed at_ms=' "${LOG[$id]}" || true)
		echo "  no-relay: $id: ${line#*reason=}"
		if [[ $line == *"candidate pair failed"* || $line == *"no pair selected"* ]] &&
			! grep -q '^pair .*relay' "${LOG[$id]}" && ! grep -q '^connected' "${LOG[$id]}"; then
			ok "no-relay: $id found no path and tried no relay"
		else
			notok "no-relay: $id" "expected a failure without relays (exit ${r1}/${r2}): ${line:-none}"
		fi
	done
fi

if want dead; then
	end=$((SECONDS + 20))
	until grep -q '^datagrams ok' "${LOG[d1]}" && grep -q '^datagrams ok' "${LOG[d2]}"; do
		if ((SECONDS >= end)); then break; fi
		sleep 0.1
	done
	if grep -q '^datagrams ok' "${LOG[d1]}" && grep -q '^datagrams ok' "${LOG[d2]}"; then
		ok "dead: link up ($(field d1 type)), datagrams both ways"
		sleep 1
		netlab_exec n-d1 iptables -I FORWARD 1 -j DROP
		drop_ms=$(date +%s%3N)
		echo "  dead: all traffic through n-d1 dropped at $drop_ms"
		waitexit d1 25
		r1=$RC
		waitexit d2 25
		r2=$RC
		for id in d1 d2; do
			line=$(grep -m1 '^failed at_ms=' "${LOG[$id]}" || true)
			at=$(sed -n 's/^failed at_ms=\([0-9]*\).*/\1/p' <<<"$line")
			if [[ -n $at ]]; then
				dt=$((at - drop_ms))
				echo "  dead: $id failed ${dt} ms after the drop: ${line#*reason=}"
				if ((dt <= 15050)) && [[ $line == *consent* ]]; then
					ok "dead: $id declared the path dead in $dt ms"
				else
					notok "dead: $id" "failed after $dt ms (> 15 s) or not by consent: $line"
				fi
			else
				notok "dead: $id" "no failed() within 25 s of the drop (exit ${r1}/${r2})"
			fi
		done
	else
		notok dead "the link did not come up"
		grep -h '^pair\|^failed\|^timeout' "${LOG[d1]}" | sed 's/^/    d1: /' || true
	fi
fi

# Sanitizer builds (make SAN=1): any report in a driver's log fails the run.
sleep 0.5
mapfile -t san < <(grep -l 'Sanitizer\|runtime error:' "${LOG[@]}" 2>/dev/null || true)
if ((${#san[@]} == 0)); then
	ok "no sanitizer reports from the drivers"
else
	notok sanitizer "reports in: ${san[*]}"
	grep -h -A12 'Sanitizer\|runtime error:' "${san[@]}" | head -60 || true
fi

echo "$pass passed, $fail failed"
((fail == 0))
