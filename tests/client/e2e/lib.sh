# lib.sh: shared helpers for the mesh-client end-to-end tests
# (tests/client/e2e/t-*.sh): a netlab network with the real coordinator on
# public host "coord" (198.18.0.10), mesh-client processes in host
# namespaces, and checks through each client's admin API (`mesh-client
# status` and /v1/status) and through forwarded TCP/UDP traffic. Owns only
# what netlab owns for it (namespaces, processes); every address is in
# 198.18.0.0/15 or loopback inside a namespace. e2e_init_ha builds the
# three-coordinator `--ha` cluster instead (hosts c0..c2, each with
# redis-server, redis-sentinel and `coordinator --ha`, as tests/ha/cluster.sh).
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
declare -gA E2E_COORDS=() # host name -> --coordinator value (default E2E_COORD_URL)

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

# e2e_coordinator_up [ARGS...]: bin/coordinator on host coord, until it
# answers /v1/ready (20 s); returns 1 if it does not (also used by
# scripts/demo.sh).
e2e_coordinator_up() {
	netlab_spawn coord "$E2E_COORDINATOR" --secret-file "$E2E_SECRET" \
		--listen "$E2E_COORD_IP" --relay-ports 49152-49407 \
		--log-level "${E2E_COORD_LOG:-warn}" "$@"
	local pid=$NETLAB_LAST_PID end=$((SECONDS + 20))
	until NETLAB_TIMEOUT=3 netlab_exec coord curl -fsS -o /dev/null --max-time 2 \
		"$E2E_COORD_URL/v1/ready" 2>/dev/null; do
		if ! netlab_alive "$pid" || ((SECONDS >= end)); then
			return 1
		fi
		sleep 0.1
	done
}

# e2e_coordinator [ARGS...]: e2e_coordinator_up, failing the test (exit 1)
# when the coordinator is not ready.
e2e_coordinator() {
	e2e_coordinator_up "$@" && return 0
	notok coordinator "not ready at $E2E_COORD_URL/v1/ready"
	e2e_finish
	exit 1
}

# e2e_coords HOST URL[,URL...]: the --coordinator value for HOST's client
# from now on (e2e_start, e2e_restart); without it, E2E_COORD_URL.
e2e_coords() { E2E_COORDS[$1]=$2; }

# e2e_start HOST ID PEERS_JSON [ARGS...]: mesh-client for peer ID in HOST,
# given --coordinator E2E_COORDS[HOST] when set, else E2E_COORD_URL.
e2e_start() {
	local host=$1 id=$2 peers=$3
	shift 3
	E2E_ID[$host]=$id
	E2E_ARGS[$host]="$*"
	printf '%s\n' "$peers" >"$NETLAB_DIR/peers-$host.json"
	netlab_spawn "$host" "$E2E_CLIENT" --id "$id" \
		--peers "$NETLAB_DIR/peers-$host.json" \
		--coordinator "${E2E_COORDS[$host]:-$E2E_COORD_URL}" --secret-file "$E2E_SECRET" \
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
		--coordinator "${E2E_COORDS[$host]:-$E2E_COORD_URL}" --secret-file "$E2E_SECRET" \
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

# --- three coordinators in HA mode (coordinator --ha + Redis + Sentinel) ----
# The layout of tests/ha/cluster.sh and docs/ha.md: hosts c0..c2 on the
# public segment at E2E_HA_IP, each running redis-server, redis-sentinel
# and `coordinator --ha`, configured by ha/gen-config.sh; c0's Redis starts
# as the master. E2E_COORD_URL becomes c0's URL.
E2E_HA_IP=(198.18.0.10 198.18.0.11 198.18.0.12)
declare -gA E2E_HA_RPID=() E2E_HA_SPID=() E2E_HA_CPID=()

# e2e_ha_url I: coordinator I's HTTP URL.
e2e_ha_url() { echo "http://${E2E_HA_IP[$1]}:7000"; }

# e2e_init_ha: e2e_init with the cluster instead of the one coordinator:
# the network, the secret, the three hosts and their processes, until every
# coordinator answers /v1/ready and lists the other two. Fails the test
# (exit 1) when the cluster does not come up within 60 s.
e2e_init_ha() {
	local i envs t0
	netlab_require redis-server redis-sentinel redis-cli jq || {
		notok "tools" "the HA cluster needs redis-server, redis-sentinel, redis-cli and jq (make deps)"
		exit 1
	}
	netlab_init
	E2E_SECRET=$NETLAB_DIR/root.secret
	(umask 077 && openssl rand -hex 32 >"$E2E_SECRET")
	for i in 0 1 2; do netlab_public_host "c$i" "${E2E_HA_IP[i]}"; done
	E2E_COORD_URL=$(e2e_ha_url 0)
	E2E_HA_CFG=$NETLAB_DIR/ha
	# Sentinel's down-after as in tests/ha/cluster.sh (default 3000).
	bash "$NETLAB_ROOT/ha/gen-config.sh" --secret-file "$E2E_SECRET" --out "$E2E_HA_CFG" \
		--down-after-ms 2000 --failover-timeout-ms 10000 \
		--node "c0=${E2E_HA_IP[0]}" --node "c1=${E2E_HA_IP[1]}" --node "c2=${E2E_HA_IP[2]}" >/dev/null
	E2E_HA_SPW=$(bash "$NETLAB_ROOT/ha/gen-config.sh" --secret-file "$E2E_SECRET" --print-password sentinel)
	for i in 0 1 2; do
		netlab_spawn "c$i" redis-server "$E2E_HA_CFG/c$i/redis.conf"
		E2E_HA_RPID[$i]=$NETLAB_LAST_PID
	done
	for i in 0 1 2; do netlab_wait_listen "c$i" tcp 6379 10; done
	for i in 0 1 2; do
		netlab_spawn "c$i" redis-sentinel "$E2E_HA_CFG/c$i/sentinel.conf"
		E2E_HA_SPID[$i]=$NETLAB_LAST_PID
	done
	for i in 0 1 2; do netlab_wait_listen "c$i" tcp 26379 10; done
	for i in 0 1 2; do
		mapfile -t envs < <(grep -v '^#' "$E2E_HA_CFG/c$i/coordinator.env")
		# TMPDIR: the relay's scratch folder goes with the run.
		netlab_spawn "c$i" env "${envs[@]}" TMPDIR="$NETLAB_DIR" "$E2E_COORDINATOR" \
			--secret-file "$E2E_SECRET" --relay-ports 49152-49407 \
			--log-level "${E2E_COORD_LOG:-info}"
		E2E_HA_CPID[$i]=$NETLAB_LAST_PID
	done
	t0=$(now_ms)
	for i in 0 1 2; do
		until e2e_ha_ready "$i" && e2e_ha_lists "$i" 3; do
			if ! netlab_alive "${E2E_HA_CPID[$i]}" || (($(now_ms) - t0 > 60000)); then
				notok "ha cluster" "c$i not ready or not listing three coordinators within 60 s"
				e2e_finish
				exit 1
			fi
			sleep 0.2
		done
	done
	ok "ha cluster: three coordinators ready and listing each other in $(($(now_ms) - t0)) ms"
}

# e2e_ha_get I PATH: an unsigned GET to coordinator I from its own host.
e2e_ha_get() {
	NETLAB_TIMEOUT=5 netlab_exec "c$1" curl -fsS --max-time 3 "$(e2e_ha_url "$1")$2" 2>/dev/null
}

# e2e_ha_ready I: coordinator I answers /v1/ready with 200.
e2e_ha_ready() { e2e_ha_get "$1" /v1/ready >/dev/null; }

# e2e_ha_lists I N: coordinator I's /v1/coordinators lists N entries (a
# signed request, made by bin/meshreq from I's host as peer "probe").
e2e_ha_lists() {
	local body
	body=$(NETLAB_TIMEOUT=8 netlab_exec "c$1" "$E2E_MESHREQ" --secret-file "$E2E_SECRET" \
		--peer probe --timeout 3 GET "$(e2e_ha_url "$1")/v1/coordinators" 2>/dev/null) || return 1
	[[ $(jq '.coordinators | length' <<<"$body" 2>/dev/null) == "$2" ]]
}

# e2e_ha_serves I J: the shared mailbox works: a publish through
# coordinator I is accepted (202) and a poll through J answers 200 (signed
# requests from those hosts, peers "hap" -> "haq"; each publish opens a
# newer epoch, which purges the earlier ones).
e2e_ha_serves() {
	local psig=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	NETLAB_TIMEOUT=8 netlab_exec "c$1" "$E2E_MESHREQ" --secret-file "$E2E_SECRET" --peer hap \
		--timeout 5 POST "$(e2e_ha_url "$1")/v1/publish" \
		"{\"from\":\"hap\",\"to\":\"haq\",\"epoch\":$(now_ms),\"kind\":\"probe\",\"payload\":\"\",\"psig\":\"$psig\"}" \
		>/dev/null 2>&1 || return 1
	NETLAB_TIMEOUT=8 netlab_exec "c$2" "$E2E_MESHREQ" --secret-file "$E2E_SECRET" --peer haq \
		--timeout 5 GET "$(e2e_ha_url "$2")/v1/poll?wait=0" >/dev/null 2>&1
}

# e2e_ha_topology_ok I...: every Sentinel on these hosts sees the master
# with two replicas and the other live Sentinels, and none is in TILT mode;
# before that a failover aborts with "no good replica" (docs/ha.md), and a
# Sentinel in TILT (its timer stalled over 2 s, e.g. on a loaded machine)
# does nothing for 30 s.
e2e_ha_topology_ok() {
	local i s
	for i in "$@"; do
		s=$(NETLAB_TIMEOUT=5 netlab_exec "c$i" redis-cli -h "${E2E_HA_IP[i]}" -p 26379 \
			-a "$E2E_HA_SPW" --no-auth-warning info sentinel 2>/dev/null) || return 1
		grep -q '^sentinel_tilt:0' <<<"$s" || return 1
		s=$(NETLAB_TIMEOUT=5 netlab_exec "c$i" redis-cli --json -h "${E2E_HA_IP[i]}" -p 26379 \
			-a "$E2E_HA_SPW" --no-auth-warning sentinel master mesh 2>/dev/null) || return 1
		[[ $(jq -r '."num-other-sentinels"' <<<"$s") -ge $(($# - 1)) ]] || return 1
		[[ $(jq -r '."num-slaves"' <<<"$s") -ge 2 ]] || return 1
		s=$(NETLAB_TIMEOUT=5 netlab_exec "c$i" redis-cli --json -h "${E2E_HA_IP[i]}" -p 26379 \
			-a "$E2E_HA_SPW" --no-auth-warning sentinel replicas mesh 2>/dev/null) || return 1
		[[ $(jq '[.[] | select(.flags == "slave")] | length' <<<"$s") -ge 2 ]] || return 1
	done
}

# e2e_ha_kill_host I: the whole host I dies like a machine losing power:
# its link goes down first (so no FIN, RST or ICMP leaves it any more),
# then SIGKILL to its coordinator, Redis and Sentinel and anything else in
# its namespace. Peers see silence, never a refusal.
e2e_ha_kill_host() {
	local i=$1 p
	local pids=("${E2E_HA_CPID[$i]}" "${E2E_HA_RPID[$i]}" "${E2E_HA_SPID[$i]}")
	ip -n "$(netlab_ns "c$i")" link set eth0 down
	# Out of the job table first: bash would report each as "Killed".
	disown "${pids[@]}" 2>/dev/null || true
	kill -9 "${pids[@]}" 2>/dev/null || true
	for p in $(ip netns pids "$(netlab_ns "c$i")" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		netlab_wait_until 5 "pid $p to end" _nl_dead "$p" || true
	done
}

# e2e_ha_index IP: the index of the coordinator host with this address.
e2e_ha_index() {
	local i
	for i in 0 1 2; do [[ ${E2E_HA_IP[i]} == "$1" ]] && { echo "$i"; return 0; }; done
	return 1
}
