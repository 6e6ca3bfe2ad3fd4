#!/usr/bin/env bash
# bench/run.sh: the signaling benchmark driver. Starts one bin/coordinator
# on 127.0.0.1 (free ports in 17200-17299, a temporary 0600 secret), waits
# for /v1/ready, runs bin/loadgen in publish mode (2 threads, 50 keep-alive
# connections, like `wrk -t2 -c50`) and in wake mode, stops the
# coordinator and prints a summary against the targets (>= 50,000
# publishes/s, long-poll wake p99 < 5 ms). Owns only the processes and
# files it creates; everything is removed on exit, also when interrupted.
#
# Environment (all optional):
#   BIN=bin                 where coordinator and loadgen live
#   BENCH_DURATION=10       seconds per loadgen run
#   BENCH_THREADS=2 BENCH_CONNECTIONS=50 BENCH_PEERS=1000
#   BENCH_WAITERS=100 BENCH_WAKE_RATE=1000
#   BENCH_MIXED=1           also run mixed mode (publish load + long-polls)
#   BENCH_WRK=1             also run `wrk -t2 -c50` on /v1/health: the
#                           coordinator's bare HTTP ceiling, for reference
#   BENCH_PIN=0             1: coordinator on CPU 0, loadgen on CPU 1
#                           (taskset); 0: let the scheduler share both
#                           cores, as the seed's wrk figure was taken
#   BENCH_ENFORCE=0         1: exit 1 when a target is missed
#   BENCH_KEEP_LOG=0        1: keep the coordinator's log
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
DURATION=${BENCH_DURATION:-10}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-50}
PEERS=${BENCH_PEERS:-1000}
WAITERS=${BENCH_WAITERS:-100}
WAKE_RATE=${BENCH_WAKE_RATE:-1000}
PIN=${BENCH_PIN:-0}
TARGET_PPS=50000
TARGET_WAKE_P99_MS=5

COORD=$BIN/coordinator
LOADGEN=$BIN/loadgen
for b in "$COORD" "$LOADGEN"; do
	[[ -x $b ]] || { echo "bench: $b is missing (run: make bench)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "bench: curl is missing (run: make deps)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/mesh-bench.XXXXXX)
coord_pid=
child_pid= # the loadgen or wrk now running: waited for, so signals act at once
# shellcheck disable=SC2317 # invoked through the EXIT trap
cleanup() {
	if [[ -n $child_pid ]]; then
		kill -TERM "$child_pid" 2>/dev/null || true
		wait "$child_pid" 2>/dev/null || true
	fi
	if [[ -n $coord_pid ]] && kill -0 "$coord_pid" 2>/dev/null; then
		local st=0
		kill -TERM "$coord_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$coord_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$coord_pid" 2>/dev/null || true
		wait "$coord_pid" 2>/dev/null || st=$?
		# 143 is SIGTERM's own status for a process without a handler
		if ((st != 0 && st != 143)); then
			echo "bench: the coordinator exited with status $st on SIGTERM (a crash on shutdown?)" >&2
		fi
	fi
	if [[ ${BENCH_KEEP_LOG:-0} == 1 && -f $tmp/coordinator.log ]]; then
		cp "$tmp/coordinator.log" "bench-coordinator.log"
		echo "bench: coordinator log kept in bench-coordinator.log"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port is free when nothing listens or is bound on it, TCP or UDP.
port_free() {
	! ss -Htuan "( sport = :$1 )" 2>/dev/null | grep -q .
}
taken=" " # ports already handed out (globals: no command substitution)
pick_port() { # VAR
	local p
	for p in $(shuf -i 17200-17299); do
		[[ $taken == *" $p "* ]] && continue
		if port_free "$p"; then
			taken+="$p "
			printf -v "$1" '%s' "$p"
			return 0
		fi
	done
	echo "bench: no free port in 17200-17299" >&2
	exit 1
}
# A block of n consecutive free ports for TURN relays (unused by this
# benchmark, but kept inside our range).
pick_block() { # VAR n
	local n=$2 s p ok
	for s in $(shuf -i 17200-$((17300 - n))); do
		ok=1
		for ((p = s; p < s + n; p++)); do
			if [[ $taken == *" $p "* ]] || ! port_free "$p"; then ok=0; break; fi
		done
		if ((ok)); then
			for ((p = s; p < s + n; p++)); do taken+="$p "; done
			printf -v "$1" '%s' "$s-$((s + n - 1))"
			return 0
		fi
	done
	echo "bench: no block of $n free ports in 17200-17299" >&2
	exit 1
}

secret=$tmp/secret
(umask 077 && openssl rand -hex 32 >"$secret")
chmod 600 "$secret"

# The per-peer publish rate limit (default 200/s) must not be what we
# measure: raise it when the coordinator has the knob; otherwise the load
# is spread over $PEERS peers (50,000/s over 1000 peers is 50/s each).
extra=()
help=$("$COORD" --help 2>&1 || true)
if grep -q -- '--publish-rate' <<<"$help"; then
	extra+=(--publish-rate 100000)
fi

pin_server=() pin_client=()
if [[ $PIN == 1 ]] && command -v taskset >/dev/null; then
	pin_server=(taskset -c 0)
	pin_client=(taskset -c 1)
fi

# Starts the coordinator on fresh ports and waits for /v1/ready. Another
# test may take a port between our check and the bind, so a coordinator
# that exits at start is retried on new ports, twice.
start_coordinator() {
	local attempt
	for attempt in 1 2 3; do
		pick_port HTTP_PORT
		pick_port STUN_PORT
		pick_block RELAYS 8
		URL=http://127.0.0.1:$HTTP_PORT
		echo "bench: coordinator on $URL (stun $STUN_PORT, relays $RELAYS), pin=$PIN"
		"${pin_server[@]}" "$COORD" --listen 127.0.0.1 --http-port "$HTTP_PORT" \
			--stun-port "$STUN_PORT" --tls-port 0 --relay-ports "$RELAYS" \
			--secret-file "$secret" --log-level warn "${extra[@]}" \
			>"$tmp/coordinator.log" 2>&1 &
		coord_pid=$!
		for _ in $(seq 100); do
			if ! kill -0 "$coord_pid" 2>/dev/null; then
				wait "$coord_pid" 2>/dev/null || true
				coord_pid=
				echo "bench: coordinator exited at start (attempt $attempt):" >&2
				tail -5 "$tmp/coordinator.log" >&2
				continue 2
			fi
			if curl -fsS -m 1 -o /dev/null "$URL/v1/ready" 2>/dev/null; then
				return 0
			fi
			sleep 0.2
		done
		echo "bench: coordinator not ready after 20 s:" >&2
		tail -20 "$tmp/coordinator.log" >&2
		exit 1
	done
	exit 1
}
start_coordinator

# CPU seconds the coordinator used so far (utime + stime from /proc).
coord_cpu() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13) / hz }' \
		"/proc/$coord_pid/stat" 2>/dev/null || echo 0
}

declare -A result server_cpu
run_loadgen() { # name, loadgen args...
	local name=$1 c0 c1 rc=0
	shift
	echo
	echo "== $name: loadgen $*"
	c0=$(coord_cpu)
	"${pin_client[@]}" "$LOADGEN" --url "$URL" --secret-file "$secret" \
		--threads "$THREADS" --duration "$DURATION" "$@" > >(tee "$tmp/$name.out") &
	child_pid=$!
	wait "$child_pid" || rc=$?
	child_pid=
	c1=$(coord_cpu)
	server_cpu[$name]=$(awk -v a="$c0" -v b="$c1" -v d="$DURATION" 'BEGIN { printf "%.0f", 100 * (b - a) / d }')
	echo "  coordinator CPU during the run: ${server_cpu[$name]}% of one core"
	result[$name]=$(grep '^RESULT ' "$tmp/$name.out" | tail -1 || true)
	if ! kill -0 "$coord_pid" 2>/dev/null; then
		echo "bench: the coordinator died during $name:" >&2
		tail -20 "$tmp/coordinator.log" >&2
		exit 1
	fi
	return $rc
}

field() { # RESULT line, key
	tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1
}

if [[ ${BENCH_WRK:-1} == 1 ]] && command -v wrk >/dev/null; then
	echo
	echo "== reference: wrk -t2 -c50 -d5s $URL/v1/health (no auth, no mailbox)"
	"${pin_client[@]}" wrk -t2 -c50 -d5s "$URL/v1/health" > >(tee "$tmp/wrk.out") &
	child_pid=$!
	wait "$child_pid" || true
	child_pid=
fi

fail=0
run_loadgen publish --mode publish --connections "$CONNS" --peers "$PEERS" || fail=1
run_loadgen wake --mode wake --waiters "$WAITERS" --wake-rate "$WAKE_RATE" || fail=1
if [[ ${BENCH_MIXED:-1} == 1 ]]; then
	run_loadgen mixed --mode mixed --connections "$CONNS" --peers "$PEERS" \
		--waiters "$WAITERS" --wake-rate "$WAKE_RATE" || fail=1
fi

echo
echo "== summary (coordinator $(cat VERSION 2>/dev/null || echo '?'), $(nproc) cores, pin=$PIN)"
if [[ -f $tmp/wrk.out ]]; then
	echo "  wrk /v1/health ceiling: $(awk '/Requests\/sec/ { print $2 }' "$tmp/wrk.out") req/s"
fi
verdict() { # ok?
	if [[ $1 == 1 ]]; then echo PASS; else echo FAIL; fi
}
pps=$(field "${result[publish]:-}" publishes_per_s)
p99=$(field "${result[publish]:-}" p99_ms)
perr=$(field "${result[publish]:-}" errors)
ok=$(awk -v v="${pps:-0}" -v t=$TARGET_PPS 'BEGIN { print (v >= t) ? 1 : 0 }')
((ok)) || fail=1
printf '  publish: %s publishes/s (target >= %d: %s), p50 %s ms, p99 %s ms, non-202 %s, coordinator CPU %s%%\n' \
	"${pps:-?}" $TARGET_PPS "$(verdict "$ok")" "$(field "${result[publish]:-}" p50_ms)" \
	"${p99:-?}" "${perr:-?}" "${server_cpu[publish]:-?}"
wp99=$(field "${result[wake]:-}" wake_p99_ms)
wn=$(field "${result[wake]:-}" wakes)
ok=$(awk -v v="${wp99:-999}" -v n="${wn:-0}" -v t=$TARGET_WAKE_P99_MS 'BEGIN { print (n > 0 && v < t) ? 1 : 0 }')
((ok)) || fail=1
printf '  wake: %s wakes, p50 %s ms, p99 %s ms (target < %d ms: %s), max %s ms, lost %s\n' \
	"${wn:-?}" "$(field "${result[wake]:-}" wake_p50_ms)" \
	"${wp99:-?}" $TARGET_WAKE_P99_MS "$(verdict "$ok")" \
	"$(field "${result[wake]:-}" wake_max_ms)" "$(field "${result[wake]:-}" wake_lost)"
if [[ -n ${result[mixed]:-} ]]; then
	printf '  mixed: %s publishes/s with %s long-polls; wake p99 %s ms under that load, max %s ms\n' \
		"$(field "${result[mixed]}" publishes_per_s)" "$WAITERS" \
		"$(field "${result[mixed]}" wake_p99_ms)" "$(field "${result[mixed]}" wake_max_ms)"
fi
for k in publish wake mixed; do
	[[ -n ${result[$k]:-} ]] && echo "  ${result[$k]}"
done
if ((fail)); then
	echo "bench: a target was missed or a run failed"
	[[ ${BENCH_ENFORCE:-0} == 1 ]] && exit 1
fi
exit 0
