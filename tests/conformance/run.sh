#!/usr/bin/env bash
# Runs the signaling conformance suite against freshly started coordinators:
# one instance with a short --message-ttl for the full suite, then one with
# a tiny publish rate limit for the ratelimit group. Owns only the processes
# and the temporary directory it makes; binds 127.0.0.1 ports 17100-17199
# only, and removes everything on exit, also when interrupted or failed.
#
# Environment: BIN (default bin), CONFORMANCE_TTL (default 10),
# CONFORMANCE_ARGS (extra arguments for the full-suite run, e.g. -v).
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-bin}
TTL=${CONFORMANCE_TTL:-10}
COORD=$BIN/coordinator
CONF=$BIN/conformance
MESHREQ=$BIN/meshreq

for b in "$COORD" "$CONF" "$MESHREQ"; do
	[[ -x $b ]] || { echo "run.sh: $b is missing (run make first)" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/mesh-conformance.XXXXXX)
PIDS=()
# stop PID: SIGTERM, then SIGKILL if it is still there after 5 s.
stop() {
	local i
	kill "$1" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		echo "run.sh: coordinator $1 ignored SIGTERM for 5 s; killing it" >&2
		kill -9 "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
}
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		stop "$pid"
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The cluster secret: 32 random bytes as hex, mode 0600.
(umask 077; openssl rand -hex 32 >"$TMP/secret")
chmod 600 "$TMP/secret"

# Ports: blocks of 20 in 17100-17199; a block is used only when none of
# its ports is bound. Layout: http=B, stun=B+1, tls=B+2, relays B+5..B+19.
port_busy() {
	ss -Htanu 2>/dev/null | awk '{print $5}' | grep -Eq "[:.]$1\$"
}
USED_BLOCKS=" "
pick_block() {
	local b p busy
	for b in 17100 17120 17140 17160 17180; do
		[[ $USED_BLOCKS == *" $b "* ]] && continue
		busy=0
		for ((p = b; p < b + 20; p++)); do
			if port_busy "$p"; then busy=1; break; fi
		done
		if ((busy == 0)); then
			USED_BLOCKS+="$b "
			echo "$b"
			return 0
		fi
	done
	echo "run.sh: no free block of 20 ports in 17100-17199" >&2
	return 1
}

# start NAME EXTRA-ARGS... : starts a coordinator, sets URL and PID.
start() {
	local name=$1 b
	shift
	b=$(pick_block)
	URL="http://127.0.0.1:$b"
	"$COORD" --listen 127.0.0.1 --public-ip 127.0.0.1 --http-port "$b" \
		--stun-port $((b + 1)) --tls-port $((b + 2)) \
		--relay-ports "$((b + 5))-$((b + 19))" --node-id "conf-$name" \
		--secret-file "$TMP/secret" --log-level info "$@" \
		>"$TMP/$name.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	local i
	for ((i = 0; i < 150; i++)); do
		if ! kill -0 "$PID" 2>/dev/null; then
			echo "run.sh: coordinator $name exited at start:" >&2
			tail -n 30 "$TMP/$name.log" >&2
			return 1
		fi
		if "$MESHREQ" --no-auth --timeout 1 GET "$URL/v1/ready" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "run.sh: coordinator $name not ready within 15 s:" >&2
	tail -n 30 "$TMP/$name.log" >&2
	return 1
}

rc=0

echo "== conformance: full suite (--message-ttl $TTL)"
start main --message-ttl "$TTL"
# shellcheck disable=SC2086
if ! "$CONF" --url "$URL" --secret-file "$TMP/secret" --ttl "$TTL" ${CONFORMANCE_ARGS:-}; then
	rc=1
	echo "-- coordinator log (last 40 lines):"
	tail -n 40 "$TMP/main.log"
fi
stop "$PID"

echo "== conformance: rate limit (--publish-rate 5 --publish-burst 5)"
start ratelimit --publish-rate 5 --publish-burst 5
if ! "$CONF" --url "$URL" --secret-file "$TMP/secret" --only ratelimit; then
	rc=1
	echo "-- coordinator log (last 40 lines):"
	tail -n 40 "$TMP/ratelimit.log"
fi
stop "$PID"

exit $rc
