# shellcheck shell=bash
# tests/turn/lib.sh: shared helpers for the embedded-relay tests, sourced
# by tests/turn/t-*.sh. Starts bin/coordinator on 127.0.0.1 with a fresh
# 0600 secret, fetches TURN credentials from GET /v1/turn with meshreq,
# drives Debian's turnutils_* clients. Owns only the processes it starts
# and one temporary directory; everything is removed on exit, also when
# interrupted or failed. Traffic goes to 127.0.0.0/8 only.
#
# A test calls turn_init BASE first: ports BASE..BASE+39 are its own
# (tests/turn uses 17600-17999): HTTP=BASE, STUN=BASE+1, TLS=BASE+2,
# PEER=BASE+5, relay ports BASE+10..BASE+39.
#
# Environment: BIN (default bin; build/san/bin for SAN=1 builds).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN=${BIN:-bin}
COORD=$BIN/coordinator
MESHREQ=$BIN/meshreq
TEST=$(basename "$0" .sh)

T=
PIDS=()
COORD_PID=
COORD_LOG=

say() { printf '%s: %s\n' "$TEST" "$*"; }

fail() {
	say "FAIL: $*" >&2
	if [[ -n $COORD_LOG && -s $COORD_LOG ]]; then
		echo "--- coordinator log (last 40 lines) ---" >&2
		tail -n 40 "$COORD_LOG" >&2
	fi
	exit 1
}

ok() { say "ok: $*"; }

# stop_pid PID: SIGTERM, SIGKILL after 5 s. Returns the exit status.
stop_pid() {
	local pid=$1 i rc=0
	kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || rc=$?; return $rc; }
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "pid $pid ignored SIGTERM for 5 s: SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return $rc
}

forget_pid() {
	local p keep=()
	for p in "${PIDS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	PIDS=("${keep[@]}")
}

turn_cleanup() {
	local p
	trap - EXIT INT TERM HUP
	for p in "${PIDS[@]}"; do
		[[ -n $p ]] && { stop_pid "$p" >/dev/null 2>&1 || true; }
	done
	[[ -n $T && -d $T ]] && rm -rf "$T"
	return 0
}

turn_init() {
	local base=$1 t
	for t in "$COORD" "$MESHREQ"; do
		[[ -x $t ]] || { say "$t is missing (run make first)" >&2; exit 2; }
	done
	for t in turnutils_stunclient turnutils_uclient turnutils_peer openssl jq curl socat ss timeout; do
		command -v "$t" >/dev/null || { say "missing tool $t (make deps)" >&2; exit 2; }
	done
	HTTP=$base
	STUN=$((base + 1))
	TLS=$((base + 2))
	PEER=$((base + 5))
	RELAY_MIN=$((base + 10))
	RELAY_MAX=$((base + 39))
	T=$(mktemp -d /tmp/mesh-turn.XXXXXX)
	trap turn_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	mkdir -m 700 "$T/tmp"
	(umask 077 && openssl rand -hex 32 >"$T/secret")
}

# http_status PATH: the status code of a GET (000 when no answer).
http_status() {
	curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$HTTP$1" || true
}

# shellcheck disable=SC2120 # ARGS are optional
# coord_start [ARGS...]: starts the coordinator on this test's ports
# (ARGS come last and win) and waits until GET /v1/ready answers 200.
coord_start() {
	local i
	COORD_LOG=$T/coordinator.${#PIDS[@]}.log
	TMPDIR=$T/tmp "$COORD" --secret-file "$T/secret" --listen 127.0.0.1 \
		--http-port "$HTTP" --stun-port "$STUN" --tls-port "$TLS" \
		--relay-ports "$RELAY_MIN-$RELAY_MAX" "$@" >"$COORD_LOG" 2>&1 &
	COORD_PID=$!
	PIDS+=("$COORD_PID")
	for ((i = 0; i < 150; i++)); do
		kill -0 "$COORD_PID" 2>/dev/null || fail "coordinator exited during start"
		[[ $(http_status /v1/ready) == 200 ]] && return 0
		sleep 0.1
	done
	fail "GET /v1/ready did not answer 200 within 15 s"
}

# coord_stop: SIGTERM; the coordinator must exit 0 within 5 s, and its
# log must hold no sanitizer report (SAN=1 builds).
coord_stop() {
	local rc=0
	stop_pid "$COORD_PID" || rc=$?
	forget_pid "$COORD_PID"
	check_log_clean
	[[ $rc == 0 ]] || fail "coordinator exited $rc on SIGTERM"
	COORD_PID=
}

check_log_clean() {
	if grep -E -q 'runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer' "$COORD_LOG"; then
		fail "sanitizer report in the coordinator log"
	fi
}

# turn_creds PEER_ID: TURN_USER/TURN_PASS from GET /v1/turn (CONTRACT
# section 2). Retried: a lost HTTP answer is not what these tests check.
turn_creds() {
	local body i
	for ((i = 0; i < 3; i++)); do
		if body=$("$MESHREQ" --secret-file "$T/secret" --peer "$1" GET \
			"http://127.0.0.1:$HTTP/v1/turn" 2>/dev/null); then
			TURN_USER=$(jq -r .username <<<"$body")
			TURN_PASS=$(jq -r .password <<<"$body")
			[[ -n $TURN_USER && $TURN_USER != null && -n $TURN_PASS && $TURN_PASS != null ]] &&
				return 0
		fi
		sleep 0.2
	done
	fail "GET /v1/turn gave no credential"
}

# turn_key_hex: the turn key (CONTRACT section 3: HKDF-SHA256, empty salt,
# info "mesh/v1/turn", 32 bytes) as lower-case hex, from the secret file.
turn_key_hex() {
	openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt hexkey:"$(cat "$T/secret")" \
		-kdfopt info:mesh/v1/turn HKDF | tr -d ':\n' | tr 'A-F' 'a-f'
}

# rest_password USER KEYHEX: base64(HMAC-SHA1(key hex string, USER)).
rest_password() {
	printf '%s' "$1" | openssl dgst -sha1 -hmac "$2" -binary | openssl base64 -A
}

# peer_start: a UDP echo peer (turnutils_peer) on 127.0.0.1:PEER.
peer_start() {
	turnutils_peer -p "$PEER" -L 127.0.0.1 >"$T/peer.log" 2>&1 &
	PIDS+=("$!")
	sleep 0.2
}

# uclient OUTFILE ARGS...: runs turnutils_uclient against the relay with
# TURN_USER/TURN_PASS, 10 messages, no RTCP companion connection; ARGS
# add transport flags, -e peer address, -p port. Returns its exit status.
uclient() {
	local out=$1
	shift
	timeout 30 turnutils_uclient -c -n 10 -u "$TURN_USER" -w "$TURN_PASS" \
		-r "$PEER" "$@" 127.0.0.1 >"$out" 2>&1
}

# expect_roundtrip DESC ARGS...: all 10 messages must come back.
expect_roundtrip() {
	local desc=$1 out=$T/uclient.out rc=0 line
	shift
	uclient "$out" "$@" || rc=$?
	line=$(grep -o 'tot_send_msgs=[0-9]*, tot_recv_msgs=[0-9]*' "$out" | tail -n 1 || true)
	if [[ $rc != 0 || $line != "tot_send_msgs=10, tot_recv_msgs=10" ]]; then
		tail -n 15 "$out" >&2
		fail "$desc: expected 10 messages each way, got '${line:-nothing}' (uclient exit $rc)"
	fi
	ok "$desc: 10 messages relayed and echoed back"
}

# expect_refused DESC PATTERN ARGS...: uclient must fail and print PATTERN.
expect_refused() {
	local desc=$1 pattern=$2 out=$T/uclient.out rc=0
	shift 2
	uclient "$out" "$@" || rc=$?
	if [[ $rc == 0 ]] || ! grep -q -- "$pattern" "$out"; then
		tail -n 15 "$out" >&2
		fail "$desc: expected a failure with '$pattern' (uclient exit $rc)"
	fi
	ok "$desc: refused ($pattern)"
}

# metric NAME: the value of an unlabelled metric in GET /metrics.
metric() {
	curl -s -m 5 "http://127.0.0.1:$HTTP/metrics" | awk -v n="$1" '$1 == n { print $2; exit }'
}
