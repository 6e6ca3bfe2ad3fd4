#!/usr/bin/env bash
# Runs the signaling conformance suite against freshly started coordinators:
#   1. full suite, one in-memory coordinator with a short --message-ttl;
#   2. ratelimit group, a coordinator with --publish-rate 5 --publish-burst 5;
#   3. notready group, a coordinator whose --redis points at a closed port.
# (Two coordinators sharing one Redis, --url2, run in tests/ha/conformance.sh.)
# Owns only the processes and the temporary directory it makes; binds
# 127.0.0.1 ports 17100-17199 only, and removes everything on exit, also
# when interrupted or failed. Exit 0 only when every stage passed.
#
# Environment: BIN (default bin), CONFORMANCE_TTL (default 10),
# CONFORMANCE_ARGS (extra arguments for the full-suite runs, e.g. -v).
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
for t in openssl ss; do
	command -v "$t" >/dev/null || { echo "run.sh: $t is not installed (make deps)" >&2; exit 2; }
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
		echo "run.sh: process $1 ignored SIGTERM for 5 s; killing it" >&2
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
# its ports is bound. Layout: http=B, stun=B+1, tls=B+2, B+3 spare, B+4
# the closed "Redis" port of stage 3, relays B+5..B+19.
port_busy() {
	ss -Hltun 2>/dev/null | awk '{print $5}' | grep -Eq "[:.]$1\$"
}
pick_block() {
	local b p busy
	for b in 17100 17120 17140 17160 17180; do
		busy=0
		for ((p = b; p < b + 20; p++)); do
			if port_busy "$p"; then busy=1; break; fi
		done
		if ((busy == 0)); then
			echo "$b"
			return 0
		fi
	done
	echo "run.sh: no free block of 20 ports in 17100-17199" >&2
	return 1
}

# start NAME BLOCK WAITPATH EXTRA-ARGS... : starts a coordinator on the
# block, waits until WAITPATH answers 2xx, sets URL and PID.
start() {
	local name=$1 b=$2 waitpath=$3 i
	shift 3
	URL="http://127.0.0.1:$b"
	"$COORD" --listen 127.0.0.1 --public-ip 127.0.0.1 --http-port "$b" \
		--stun-port $((b + 1)) --tls-port $((b + 2)) \
		--relay-ports "$((b + 5))-$((b + 19))" --node-id "conf-$name" \
		--secret-file "$TMP/secret" --log-level info "$@" \
		>"$TMP/$name.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	for ((i = 0; i < 150; i++)); do
		if ! kill -0 "$PID" 2>/dev/null; then
			echo "run.sh: coordinator $name exited at start:" >&2
			tail -n 30 "$TMP/$name.log" >&2
			return 1
		fi
		if "$MESHREQ" --no-auth --timeout 1 GET "$URL$waitpath" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "run.sh: coordinator $name: $waitpath not 2xx within 15 s:" >&2
	tail -n 30 "$TMP/$name.log" >&2
	return 1
}

# sanitizer_clean NAME: fails when a sanitizer reported anything in the
# coordinator's log (SAN=1 builds: ASan, UBSan, LeakSanitizer at exit).
sanitizer_clean() {
	if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak)' \
		"$TMP/$1.log"; then
		echo "not ok - sanitizer report in coordinator $1's log:"
		grep -E -A 25 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP/$1.log" | head -n 60
		return 1
	fi
	return 0
}

showlog() {
	local f
	for f in "$@"; do
		echo "-- $f (last 40 lines):"
		tail -n 40 "$TMP/$f.log"
	done
}

rc=0

echo "== conformance 1/3: full suite (--message-ttl $TTL)"
if start main "$(pick_block)" /v1/ready --message-ttl "$TTL"; then
	# shellcheck disable=SC2086
	if ! "$CONF" --url "$URL" --secret-file "$TMP/secret" --ttl "$TTL" ${CONFORMANCE_ARGS:-}; then
		rc=1
		showlog main
	fi
	stop "$PID"
	sanitizer_clean main || rc=1
else
	rc=1
fi

echo "== conformance 2/3: rate limit (--publish-rate 5 --publish-burst 5)"
if start ratelimit "$(pick_block)" /v1/ready --publish-rate 5 --publish-burst 5; then
	if ! "$CONF" --url "$URL" --secret-file "$TMP/secret" --only ratelimit; then
		rc=1
		showlog ratelimit
	fi
	stop "$PID"
	sanitizer_clean ratelimit || rc=1
else
	rc=1
fi

echo "== conformance 3/3: mailbox backend unreachable (/v1/ready 503)"
b=$(pick_block)
if start notready "$b" /v1/health --redis "redis://127.0.0.1:$((b + 4))"; then
	if ! "$CONF" --url "$URL" --secret-file "$TMP/secret" --only notready; then
		rc=1
		showlog notready
	fi
	stop "$PID"
	sanitizer_clean notready || rc=1
else
	rc=1
fi

if ((rc == 0)); then
	echo "conformance: all stages passed"
else
	echo "conformance: FAILED"
fi
exit $rc
