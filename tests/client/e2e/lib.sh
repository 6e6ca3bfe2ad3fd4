# lib.sh: shared helpers for the mesh-client end-to-end tests
# (tests/client/e2e/t-*.sh): a netlab network with the real coordinator on
# public host "coord" (198.18.0.10), mesh-client processes in host
# namespaces, and checks through each client's admin API (`mesh-client
# status` and /v1/status) and through forwarded TCP/UDP traffic. Owns only
# what netlab owns for it (namespaces, processes); every address is in
# 198.18.0.0/15 or loopback inside a namespace.
# shellcheck shell=bash
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../netlab/netlab.sh"

E2E_CLIENT=$NETLAB_BIN/mesh-client
E2E_COORDINATOR=$NETLAB_BIN/coordinator
E2E_MESHREQ=$NETLAB_BIN/meshreq
E2E_COORD_IP=198.18.0.10
E2E_COORD_URL=http://$E2E_COORD_IP:7000
E2E_NAME=$(basename "$0" .sh)
netlab_require "$E2E_CLIENT" "$E2E_COORDINATOR" "$E2E_MESHREQ" openssl curl socat

e2e_pass=0 e2e_fail=0 e2e_n=0
declare -gA E2E_PID=()   # host name -> mesh-client pid
declare -gA E2E_ID=()    # host name -> peer id
declare -gA E2E_LOG=()   # host name -> log file
declare -gA E2E_ARGS=()  # host name -> extra client arguments

ok() {
	e2e_n=$((e2e_n + 1)) e2e_pass=$((e2e_pass + 1))
	echo "ok $e2e_n - $E2E_NAME: $1"
}
notok() {
	e2e_n=$((e2e_n + 1)) e2e_fail=$((e2e_fail + 1))
	echo "not ok $e2e_n - $E2E_NAME: $1: $2"
}
# check NAME CMD...: ok when CMD succeeds.
check() {
	local name=$1
	shift
	if "$@"; then ok "$name"; else notok "$name" "failed: $*"; fi
}

# e2e_finish: prints the summary, dumps logs on failure, exits. Under
# `make SAN=1` a sanitizer report in any client log is a failure too.
e2e_finish() {
	local f
	for f in "$NETLAB_DIR"/*mesh-client.log; do
		[[ -f $f ]] || continue
		if grep -q 'AddressSanitizer\|LeakSanitizer\|runtime error:' "$f"; then
			notok "sanitizers" "report in ${f##*/}"
		fi
	done
	if ((e2e_fail)); then
		netlab_dump_logs >&2 || true
	fi
	# Whole logs for a closer look (E2E_KEEP_LOGS=DIR).
	if [[ -n ${E2E_KEEP_LOGS:-} ]]; then
		mkdir -p "$E2E_KEEP_LOGS/$E2E_NAME"
		cp "$NETLAB_DIR"/*.log "$E2E_KEEP_LOGS/$E2E_NAME/" 2>/dev/null || true
	fi
	echo "$E2E_NAME: $e2e_pass passed, $e2e_fail failed"
	((e2e_fail == 0))
}

now_ms() { date +%s%3N; }

# e2e_init: the network's public segment, the secret, the coordinator.
e2e_init() {
	netlab_init
	E2E_SECRET=$NETLAB_DIR/root.secret
	(umask 077 && openssl rand -hex 32 >"$E2E_SECRET")
	netlab_public_host coord "$E2E_COORD_IP"
}

e2e_coordinator() {
	netlab_spawn coord "$E2E_COORDINATOR" --secret-file "$E2E_SECRET" \
		--listen "$E2E_COORD_IP" --relay-ports 49152-49407 \
		--log-level "${E2E_COORD_LOG:-warn}" "$@"
	local pid=$NETLAB_LAST_PID end=$((SECONDS + 20))
	until NETLAB_TIMEOUT=3 netlab_exec coord curl -fsS -o /dev/null --max-time 2 \
		"$E2E_COORD_URL/v1/ready" 2>/dev/null; do
		if ! netlab_alive "$pid" || ((SECONDS >= end)); then
			notok coordinator "not ready at $E2E_COORD_URL/v1/ready"
			e2e_finish
			exit 1
		fi
		sleep 0.1
	done
}

# e2e_start HOST ID PEERS_JSON [ARGS...]: mesh-client for peer ID in HOST.
e2e_start() {
	local host=$1 id=$2 peers=$3
	shift 3
	E2E_ID[$host]=$id
	E2E_ARGS[$host]="$*"
	printf '%s\n' "$peers" >"$NETLAB_DIR/peers-$host.json"
	netlab_spawn "$host" "$E2E_CLIENT" --id "$id" \
		--peers "$NETLAB_DIR/peers-$host.json" \
		--coordinator "$E2E_COORD_URL" --secret-file "$E2E_SECRET" \
		--log-level "${E2E_LOG_LEVEL:-info}" "$@"
	E2E_PID[$host]=$NETLAB_LAST_PID
	E2E_LOG[$host]=$NETLAB_LAST_LOG
}

# e2e_restart HOST: the same client again (after it was stopped).
e2e_restart() {
	local host=$1
	# shellcheck disable=SC2086
	netlab_spawn "$host" "$E2E_CLIENT" --id "${E2E_ID[$host]}" \
		--peers "$NETLAB_DIR/peers-$host.json" \
		--coordinator "$E2E_COORD_URL" --secret-file "$E2E_SECRET" \
		--log-level "${E2E_LOG_LEVEL:-info}" ${E2E_ARGS[$host]}
	E2E_PID[$host]=$NETLAB_LAST_PID
	E2E_LOG[$host]=$NETLAB_LAST_LOG
}

# e2e_kill9 HOST: SIGKILL, and wait until it is gone.
e2e_kill9() {
	local pid=${E2E_PID[$1]}
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# e2e_term HOST: SIGTERM and wait for the exit; its status in E2E_RC.
# (Not inside $(...): only this shell can wait for its children.)
e2e_term() {
	local pid=${E2E_PID[$1]}
	E2E_RC=0
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || E2E_RC=$?
}

# e2e_status HOST: `mesh-client status` inside HOST.
e2e_status() {
	NETLAB_TIMEOUT=5 netlab_exec "$1" "$E2E_CLIENT" status 2>/dev/null
}

# e2e_json HOST PATH: the admin API's answer.
e2e_json() {
	NETLAB_TIMEOUT=5 netlab_exec "$1" curl -fsS --max-time 3 "http://127.0.0.1:7070$2" 2>/dev/null
}

# e2e_field HOST PEER COL: a column of PEER's row in `mesh-client status`
# (1 peer, 2 state, 3 path, 4 rtt, ... 8/9: see status.c).
e2e_field() {
	# awk reads to the end: leaving early would break the pipe under curl.
	e2e_status "$1" | awk -v p="$2" -v c="$3" '$1 == p && !done { print $c; done = 1 }'
}

# e2e_up HOST PEER: the link from HOST to PEER is up.
e2e_up() { [[ $(e2e_field "$1" "$2" 2) == up ]]; }

# e2e_all_up HOST: every link of HOST is up.
e2e_all_up() {
	e2e_status "$1" | awk 'NR > 2 && /^[^ ]/ { n++; if ($2 != "up") bad++ } END { exit !(n > 0 && bad == 0) }'
}

# e2e_wait_up S HOST PEER: waits up to S seconds; prints the ms it took.
e2e_wait_up() {
	local s=$1 host=$2 peer=$3 t0 end
	t0=$(now_ms)
	end=$((t0 + s * 1000))
	while (($(now_ms) < end)); do
		if e2e_up "$host" "$peer"; then
			echo $(($(now_ms) - t0))
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# e2e_wait_all S HOST...: every link of every HOST up within S seconds.
e2e_wait_all() {
	local s=$1 end h pending
	shift
	end=$(($(now_ms) + s * 1000))
	while (($(now_ms) < end)); do
		pending=0
		for h in "$@"; do e2e_all_up "$h" || { pending=1; break; }; done
		((pending)) || return 0
		sleep 0.2
	done
	return 1
}

# --- traffic ----------------------------------------------------------------

# e2e_tcp_echo HOST PORT: a TCP server on 127.0.0.1:PORT in HOST answering
# each connection's first line with "tcp <host> <line> <peer addr>:<port>".
e2e_tcp_echo() {
	local host=$1 port=$2
	netlab_spawn "$host" socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" \
		"SYSTEM:read l; echo \"tcp $host \$l \$SOCAT_PEERADDR:\$SOCAT_PEERPORT\""
	netlab_wait_listen "$host" tcp "$port" 5
}

# e2e_udp_echo HOST PORT: the same for UDP datagrams on 127.0.0.1:PORT.
e2e_udp_echo() {
	local host=$1 port=$2
	netlab_spawn "$host" socat -b 65536 "UDP-RECVFROM:$port,bind=127.0.0.1,fork" \
		"SYSTEM:read l; echo \"udp $host \$l \$SOCAT_PEERADDR:\$SOCAT_PEERPORT\""
	netlab_wait_listen "$host" udp "$port" 5
}

# e2e_tcp HOST PORT MSG: one line through 127.0.0.1:PORT; prints the answer.
e2e_tcp() {
	echo "$3" | NETLAB_TIMEOUT=10 netlab_exec "$1" socat -t 5 -T 5 - "TCP:127.0.0.1:$2" 2>/dev/null
}

# e2e_udp HOST PORT SPORT MSG: one datagram from 127.0.0.1:SPORT (the
# sender's identity port, where answers come back); prints the answer.
e2e_udp() {
	echo "$4" | NETLAB_TIMEOUT=10 netlab_exec "$1" socat -t 3 -T 3 - \
		"UDP:127.0.0.1:$2,bind=127.0.0.1:$3" 2>/dev/null
}

# e2e_retry N CMD...: CMD until it succeeds, at most N times 0.3 s apart.
e2e_retry() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.3
	done
	return 1
}

# e2e_expect NAME WANT CMD...: ok when CMD's output equals WANT (3 tries:
# a UDP datagram may be lost like any other).
e2e_expect() {
	local name=$1 want=$2 got= i
	shift 2
	for i in 1 2 3; do
		got=$("$@" || true)
		[[ $got == "$want" ]] && break
		sleep 0.3
	done
	if [[ $got == "$want" ]]; then ok "$name"; else notok "$name" "want '$want', got '$got'"; fi
}

# e2e_no_leftovers: no mesh-client of this run is left (netlab checks
# namespaces itself at cleanup).
e2e_log_has() { grep -q -- "$2" "${E2E_LOG[$1]}"; }
