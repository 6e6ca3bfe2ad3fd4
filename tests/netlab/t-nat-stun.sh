#!/usr/bin/env bash
# t-nat-stun.sh: STUN and TURN of the real coordinator through every netlab
# NAT type. Owns nothing beyond its own netlab run. A coordinator on the
# public host coord (198.18.0.10) and one host behind each NAT:
#   - turnutils_stunclient: the host's mapped address is its NAT's public
#     IP (eim, eim-open, symmetric); no answer at all through udp-drop;
#   - GET /v1/turn through meshreq (signed as the host's peer id, sent from
#     the host through its NAT) gives a REST credential that follows
#     CONTRACT section 2/3 (checked against an independent openssl HMAC);
#   - turnutils_uclient allocates relays and passes data over UDP behind
#     eim, eim-open and symmetric; behind udp-drop UDP fails while TCP and
#     TLS pass; a wrong password is refused.
# Needs $NETLAB_BIN/coordinator and $NETLAB_BIN/meshreq (fails without).
#
# NETLAB_STUN_SERVER=turnserver runs Debian's coturn instead, with the same
# key derivation done here in bash: a self-check of the harness for when
# the coordinator is broken or absent, never what `make test-netlab` runs.
set -euo pipefail
source "$(dirname "$0")/netlab.sh"

SERVER=${NETLAB_STUN_SERVER:-coordinator}
COORDINATOR=$NETLAB_BIN/coordinator
MESHREQ=$NETLAB_BIN/meshreq
netlab_require openssl base64 curl turnutils_stunclient turnutils_uclient
case $SERVER in
coordinator) netlab_require "$COORDINATOR" "$MESHREQ" ;;
turnserver) netlab_require turnserver ;;
*)
	echo "FAIL nat-stun: NETLAB_STUN_SERVER must be coordinator or turnserver" >&2
	exit 1
	;;
esac
netlab_init

T="nat-stun"
fails=0
check() { # check NAME WHAT CMD...
	local name=$1 what=$2
	shift 2
	if "$@"; then
		netlab_pass "$T/$name"
	else
		netlab_fail "$T/$name" "$what" || true
		fails=$((fails + 1))
	fi
}

COORD=198.18.0.10
HTTP_PORT=7000
STUN_PORT=3478
TLS_PORT=5349
REALM=mesh

declare -A PUB=([eim]=198.18.0.101 [eim-open]=198.18.0.102 [symmetric]=198.18.0.103 [udp-drop]=198.18.0.104)
declare -A NET=([eim]=198.18.1 [eim-open]=198.18.2 [symmetric]=198.18.3 [udp-drop]=198.18.4)
TYPES=(eim eim-open symmetric udp-drop)

netlab_public_host coord "$COORD"
for t in "${TYPES[@]}"; do
	netlab_nat "n-$t" "${PUB[$t]}" "$t" "${NET[$t]}.0/24"
	netlab_host_behind "n-$t" "h-$t" "${NET[$t]}.10"
done

# The cluster root secret: 32 random bytes as hex, readable by root only.
SECRET=$NETLAB_DIR/root.secret
(umask 077 && openssl rand -hex 32 >"$SECRET")
ROOT_HEX=$(tr -d '\n' <"$SECRET")

# turn_key_hex: HKDF-SHA256(root, salt empty, info "mesh/v1/turn", 32 bytes)
# as lower-case hex (CONTRACT section 3).
turn_key_hex() {
	openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "hexkey:$ROOT_HEX" \
		-kdfopt info:mesh/v1/turn HKDF | tr -d ':\n' | tr 'A-F' 'a-f'
}
TURN_KEY=$(turn_key_hex)

# rest_password USERNAME: base64(HMAC-SHA1(turn key hex string, USERNAME)).
rest_password() {
	printf '%s' "$1" | openssl dgst -sha1 -hmac "$TURN_KEY" -binary | base64
}

start_coordinator() {
	netlab_spawn coord "$COORDINATOR" --secret-file "$SECRET" --listen "$COORD" \
		--http-port "$HTTP_PORT" --stun-port "$STUN_PORT" --tls-port "$TLS_PORT" \
		--relay-ports 49152-49407 --realm "$REALM" --log-level info
	local pid=$NETLAB_LAST_PID end=$((SECONDS + 20))
	while ((SECONDS < end)); do
		if ! netlab_alive "$pid"; then
			echo "coordinator exited during start" >&2
			return 1
		fi
		if NETLAB_TIMEOUT=3 netlab_exec coord curl -fsS -o /dev/null --max-time 2 \
			"http://$COORD:$HTTP_PORT/v1/ready" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "coordinator not ready at http://$COORD:$HTTP_PORT/v1/ready after 20 s" >&2
	return 1
}

start_turnserver() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-subj /CN=netlab -days 2 -keyout "$NETLAB_DIR/tls.key" \
		-out "$NETLAB_DIR/tls.crt" 2>/dev/null
	netlab_spawn coord turnserver -n --no-cli --no-dtls --listening-ip "$COORD" \
		--relay-ip "$COORD" --listening-port "$STUN_PORT" --tls-listening-port "$TLS_PORT" \
		--min-port 49152 --max-port 49407 --realm "$REALM" --use-auth-secret \
		"--static-auth-secret=$TURN_KEY" --cert "$NETLAB_DIR/tls.crt" \
		--pkey "$NETLAB_DIR/tls.key" --log-file stdout --simple-log
	netlab_wait_listen coord udp "$STUN_PORT" 10 && netlab_wait_listen coord tcp "$TLS_PORT" 10
}

# credential HOST: "username password" for HOST's peer id.
credential() {
	local host=$1 body user pass
	if [[ $SERVER == turnserver ]]; then
		user="$(($(date +%s) + 3600)):$host"
		echo "$user $(rest_password "$user")"
		return 0
	fi
	body=$(NETLAB_TIMEOUT=10 netlab_exec "$host" "$MESHREQ" --timeout 5 --secret-file "$SECRET" \
		--peer "$host" GET "http://$COORD:$HTTP_PORT/v1/turn" 2>"$NETLAB_DIR/meshreq-$host.err") || {
		echo "meshreq failed for $host: $(tr '\n' ' ' <"$NETLAB_DIR/meshreq-$host.err")" >&2
		return 1
	}
	[[ $body =~ \"username\":\"([^\"]*)\" ]] || {
		echo "no username in /v1/turn answer: $body" >&2
		return 1
	}
	user=${BASH_REMATCH[1]}
	[[ $body =~ \"password\":\"([^\"]*)\" ]] || {
		echo "no password in /v1/turn answer: $body" >&2
		return 1
	}
	pass=${BASH_REMATCH[1]//\\\//\/}
	echo "$user $pass"
}

# stun HOST: the mapped "IP:PORT" turnutils_stunclient reports, or nothing.
stun() {
	local out
	out=$(NETLAB_TIMEOUT=8 netlab_exec "$1" turnutils_stunclient -p "$STUN_PORT" "$COORD" 2>&1 || true)
	echo "$out" >"$NETLAB_DIR/stun-$1.out"
	sed -n 's/.*UDP reflexive addr: \([0-9.]*:[0-9]*\).*/\1/p' <<<"$out" | head -n1
}

# relay SECONDS HOST NAME USER PASS [FLAGS...]: run turnutils_uclient in
# client-to-client mode (two allocations on the server sending to each
# other) for at most SECONDS; writes "sent received" to $NETLAB_DIR/NAME.res
# and the log to NAME.out. Without a credential it runs nothing.
relay() {
	local secs=$1 host=$2 name=$3 user=$4 pass=$5 out sent recv
	shift 5
	if [[ -z $user || -z $pass ]]; then
		echo "no credential: not run" >"$NETLAB_DIR/$name.out"
		echo "0 0" >"$NETLAB_DIR/$name.res"
		return 0
	fi
	out=$(NETLAB_TIMEOUT=$secs netlab_exec "$host" turnutils_uclient "$@" -y -c -n 10 -l 120 \
		-m 1 -u "$user" -w "$pass" "$COORD" 2>&1 || true)
	echo "$out" >"$NETLAB_DIR/$name.out"
	sent=$(sed -n 's/.*start_mclient: tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\).*/\1/p' <<<"$out" | tail -n1)
	recv=$(sed -n 's/.*start_mclient: tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\).*/\2/p' <<<"$out" | tail -n1)
	echo "${sent:-0} ${recv:-0}" >"$NETLAB_DIR/$name.res"
}

# passed NAME: data went through: something sent, at least half received.
# (uclient's client-to-client mode may lose a session's first message,
# sent before the other side's permission is in place.)
passed() {
	local sent recv
	read -r sent recv <"$NETLAB_DIR/$1.res"
	((sent > 0 && recv * 2 >= sent))
}
# blocked NAME: uclient ran (it had a credential) and nothing came back,
# whether it gave up with an error or ran out of time.
blocked() {
	local sent recv
	read -r sent recv <"$NETLAB_DIR/$1.res"
	((recv == 0)) && ! grep -q '^no credential' "$NETLAB_DIR/$1.out"
}
res() { tr ' ' / <"$NETLAB_DIR/$1.res"; }

if ! "start_$SERVER"; then
	netlab_fail "$T/server-start" "$SERVER did not start on $COORD (its log follows)" || true
	exit 1
fi
echo "  server: $SERVER on $COORD"

# STUN: the mapped address is the NAT's public IP, except through udp-drop.
for t in "${TYPES[@]}"; do
	m=$(stun "h-$t")
	echo "  $t: STUN mapped address '${m}'"
	if [[ $t == udp-drop ]]; then
		check "$t-stun-blocked" "got a STUN answer '$m' through udp-drop" test -z "$m"
	else
		check "$t-stun-mapped" "mapped address '$m' is not ${PUB[$t]}:*" \
			test "${m%:*}" == "${PUB[$t]}"
	fi
done

# Credentials: one per host, fetched through its NAT.
usable_credential() { [[ ${USER[$1]} =~ ^[0-9]+:h-$1$ && -n ${PASS[$1]} ]]; }
expiry_ok() { (($1 > $2 + 600 && $1 <= $2 + 7300)); }
declare -A USER PASS
for t in "${TYPES[@]}"; do
	read -r u p < <(credential "h-$t" || true) || true
	USER[$t]=${u:-}
	PASS[$t]=${p:-}
	check "$t-credential" "no usable /v1/turn credential for h-$t ('${u:-}')" \
		usable_credential "$t"
done
if [[ $SERVER == coordinator && -n ${USER[eim]} ]]; then
	check turn-credential-formula \
		"password for ${USER[eim]} is not base64(HMAC-SHA1(hex turn key, username))" \
		test "${PASS[eim]}" == "$(rest_password "${USER[eim]}")"
	expiry=${USER[eim]%%:*}
	check turn-credential-expiry "expiry $expiry is not 10 min..2 h from now" \
		expiry_ok "$expiry" "$(date +%s)"
fi

# TURN, all at once: working cases take ~5 s (TLS up to ~16 s: uclient
# waits for a lost first message); the cases that must fail get 8 s.
pids=()
for t in eim eim-open symmetric; do
	relay 30 "h-$t" "udp-$t" "${USER[$t]}" "${PASS[$t]}" &
	pids+=($!)
done
relay 8 h-udp-drop udp-udp-drop "${USER[udp-drop]}" "${PASS[udp-drop]}" &
pids+=($!)
relay 30 h-udp-drop tcp-udp-drop "${USER[udp-drop]}" "${PASS[udp-drop]}" -t &
pids+=($!)
relay 30 h-udp-drop tls-udp-drop "${USER[udp-drop]}" "${PASS[udp-drop]}" -t -S -p "$TLS_PORT" &
pids+=($!)
relay 8 h-eim badpass-eim "${USER[eim]}" "wrong${PASS[eim]}" &
pids+=($!)
for p in "${pids[@]}"; do wait "$p" || true; done

for t in eim eim-open symmetric; do
	echo "  $t: TURN over UDP sent/received $(res "udp-$t")"
	check "$t-turn-udp" "no data through a UDP relay (see udp-$t.out)" passed "udp-$t"
done
echo "  udp-drop: TURN over UDP $(res udp-udp-drop), TCP $(res tcp-udp-drop), TLS $(res tls-udp-drop)"
check udp-drop-turn-udp-blocked "UDP TURN worked through udp-drop, or was not tried" blocked udp-udp-drop
check udp-drop-turn-tcp "no data through a relay over TCP" passed tcp-udp-drop
check udp-drop-turn-tls "no data through a relay over TLS" passed tls-udp-drop
echo "  wrong password: sent/received $(res badpass-eim)"
check turn-wrong-password-refused "an allocation with a wrong password worked, or was not tried" blocked badpass-eim

if ((fails)); then
	for f in "$NETLAB_DIR"/*.out; do
		echo "--- ${f##*/} (last 8 lines)" >&2
		tail -n 8 "$f" >&2
	done
	exit 1
fi
