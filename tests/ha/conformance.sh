#!/usr/bin/env bash
# tests/ha/conformance.sh: the signaling conformance suite (bin/conformance,
# tests/conformance/) against the Redis mailbox: one coordinator with
# --redis, then two coordinators sharing that Redis with the requests
# alternating between them (--url2), then the rate-limit group on one.
# Owns only the processes and the temporary folder it makes; binds
# 127.0.0.1 ports picked free in 16600-16799; removes everything on exit,
# failure or signal. Prints PASS/FAIL lines; exit 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-bin}
TTL=${CONFORMANCE_TTL:-10}
COORD=$BIN/coordinator
CONF=$BIN/conformance
MESHREQ=$BIN/meshreq

fail() { echo "FAIL $*"; exit 1; }
for t in redis-server redis-cli openssl ss "$COORD" "$CONF" "$MESHREQ"; do
	if [[ $t == */* ]]; then [[ -x $t ]] || fail "ha-conformance: missing $t (run make)"; else
		command -v "$t" >/dev/null || fail "ha-conformance: missing tool $t (make deps)"; fi
done

TMP=$(mktemp -d /tmp/mesh-ha-conf.XXXXXX)
PIDS=()
rc=1
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ $rc != 0 ]]; then
		for f in "$TMP"/*.log; do
			[[ -s $f ]] || continue
			echo "--- $f (last 20 lines)" >&2
			tail -n 20 "$f" >&2
		done
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { ss -Htanu "sport = :$1" | grep -q .; }
USED=" "
pick_block() { # a block of 20 free ports
	local b p busy
	for ((b = 16600; b < 16800; b += 20)); do
		[[ $USED == *" $b "* ]] && continue
		busy=0
		for ((p = b; p < b + 20; p++)); do port_busy "$p" && { busy=1; break; }; done
		if ((busy == 0)); then USED+="$b "; echo "$b"; return 0; fi
	done
	echo "ha-conformance: no free block of 20 ports in 16600-16799" >&2
	return 1
}

(umask 077; openssl rand -hex 32 >"$TMP/secret")
RPW=$(ha/gen-config.sh --secret-file "$TMP/secret" --print-password redis)

RB=$(pick_block)
cat >"$TMP/redis.conf" <<EOF
bind 127.0.0.1
port $RB
dir $TMP
save ""
appendonly no
requirepass $RPW
EOF
redis-server "$TMP/redis.conf" >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 100; i++)); do
	redis-cli -p "$RB" -a "$RPW" --no-auth-warning ping 2>/dev/null | grep -q PONG && break
	sleep 0.05
done
# The coordinator derives the password from --secret-file itself.
REDIS_URL="redis://127.0.0.1:$RB"

start() { # start NAME ARGS... -> URL, PID
	local name=$1 b i
	shift
	b=$(pick_block)
	URL="http://127.0.0.1:$b"
	TMPDIR=$TMP "$COORD" --listen 127.0.0.1 --public-ip 127.0.0.1 --http-port "$b" \
		--stun-port $((b + 1)) --tls-port $((b + 2)) --relay-ports "$((b + 5))-$((b + 19))" \
		--node-id "haconf-$name" --secret-file "$TMP/secret" --redis "$REDIS_URL" "$@" \
		>"$TMP/$name.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	for ((i = 0; i < 150; i++)); do
		kill -0 "$PID" 2>/dev/null || { echo "ha-conformance: coordinator $name exited" >&2; return 1; }
		"$MESHREQ" --no-auth --timeout 1 GET "$URL/v1/ready" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "ha-conformance: coordinator $name not ready within 15 s" >&2
	return 1
}

result=0
verdict() { # verdict NAME CMD...
	local name=$1
	shift
	if "$@" >"$TMP/$name.out" 2>&1; then
		echo "PASS $name ($(tail -n1 "$TMP/$name.out"))"
	else
		echo "FAIL $name"
		grep -E "^not ok" "$TMP/$name.out" | head -n 40 || true
		tail -n 1 "$TMP/$name.out"
		result=1
	fi
}

start one --message-ttl "$TTL"
URL1=$URL
verdict conformance-redis-one "$CONF" --url "$URL1" --secret-file "$TMP/secret" --ttl "$TTL"

# The second runs two HTTP loops (the default with Redis is one), so the
# per-thread Redis instances answer the same rules too.
start two --message-ttl "$TTL" --http-threads 2
URL2=$URL
verdict conformance-redis-two "$CONF" --url "$URL1" --url2 "$URL2" --secret-file "$TMP/secret" --ttl "$TTL"

start ratelimit --publish-rate 5 --publish-burst 5
verdict conformance-redis-ratelimit "$CONF" --url "$URL" --secret-file "$TMP/secret" --only ratelimit

# The Redis backend's metrics are served.
metrics=$("$MESHREQ" --no-auth GET "$URL1/metrics" 2>/dev/null || true)
if grep -q '^mesh_redis_up 1$' <<<"$metrics"; then
	echo "PASS metrics-redis-up"
else
	echo "FAIL metrics-redis-up: /metrics lacks mesh_redis_up 1"
	result=1
fi
# Stop the coordinators and check their logs: a sanitizer build (make
# SAN=1) reports there, also at exit.
for p in "${PIDS[@]:1}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
if grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$TMP"/*.log >/dev/null 2>&1; then
	echo "FAIL sanitizer: $(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$TMP"/*.log | xargs -n1 basename | tr '\n' ' ')"
	grep -hE -A12 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$TMP"/*.log | head -n 40
	result=1
fi
rc=$result
exit $rc
