#!/usr/bin/env bash
# relay_start() errors are start errors: a STUN or TLS port in use, or a
# certificate whose key does not match, make the coordinator exit non-zero
# at once with a line that names the problem, leaving no temp dir behind.
# shellcheck source=tests/turn/lib.sh
source "$(dirname "$0")/lib.sh"
turn_init 17920

# expect_start_error PATTERN ARGS...
expect_start_error() {
	local pattern=$1 i rc=0
	shift
	COORD_LOG=$T/coordinator.fail.log
	TMPDIR=$T/tmp "$COORD" --secret-file "$T/secret" --listen 127.0.0.1 \
		--http-port "$HTTP" --stun-port "$STUN" --tls-port "$TLS" \
		--relay-ports "$RELAY_MIN-$RELAY_MAX" "$@" >"$COORD_LOG" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && fail "the coordinator still runs 10 s after a start error ($pattern)"
	wait "$pid" || rc=$?
	forget_pid "$pid"
	[[ $rc != 0 ]] || fail "the coordinator exited 0 despite: $pattern"
	grep -q -- "$pattern" "$COORD_LOG" || fail "no '$pattern' in the log"
	check_log_clean
	[[ -z $(find "$T/tmp" -mindepth 1) ]] || fail "temp dir left behind after: $pattern"
	ok "exit $rc: $(grep -o -- "$pattern.*" "$COORD_LOG" | head -n 1)"
}

# hold CMD...: a socat holding a port for the next check.
hold() {
	socat "$@" >/dev/null 2>&1 &
	HOLD=$!
	PIDS+=("$HOLD")
	sleep 0.3
}
release() {
	stop_pid "$HOLD" || true
	forget_pid "$HOLD"
}

hold -u UDP-RECV:"$STUN",bind=127.0.0.1 /dev/null
expect_start_error "cannot bind UDP 127.0.0.1 port $STUN"
release

hold TCP-LISTEN:"$TLS",bind=127.0.0.1,reuseaddr /dev/null
expect_start_error "cannot bind TCP 127.0.0.1 port $TLS"
release

(umask 077 &&
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=a.invalid -keyout "$T/a.key" -out "$T/a.pem" >/dev/null 2>&1 &&
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/b.key" >/dev/null 2>&1) ||
	fail "openssl could not make the test keys"
expect_start_error "TLS key does not match the certificate" --tls-cert "$T/a.pem" --tls-key "$T/b.key"
