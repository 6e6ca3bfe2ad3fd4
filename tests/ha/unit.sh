#!/usr/bin/env bash
# tests/ha/unit.sh: runs bin/ha-test against private Redis processes on
# 127.0.0.1 (ports picked free in 16400-16599): first one password-protected
# redis-server for the mailbox rules, then a three-node Redis + Sentinel
# layout made by ha/gen-config.sh for the HA path (WAIT, registry,
# failover). Also checks that the shell generator and the C code derive
# the same passwords. Owns only the processes and the temporary folder it
# makes; stops and removes them on exit, failure or signal.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-bin}
HA_TEST=$BIN/ha-test
GEN=ha/gen-config.sh

fail() { echo "FAIL $*"; exit 1; }
for t in redis-server redis-sentinel redis-cli openssl ss "$HA_TEST"; do
	if [[ $t == */* ]]; then [[ -x $t ]] || fail "unit: missing $t (make $t)"; else
		command -v "$t" >/dev/null || fail "unit: missing tool $t (make deps)"; fi
done

TMP=$(mktemp -d /tmp/mesh-ha-unit.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ ${rc:-1} != 0 && -d $TMP ]]; then
		for f in "$TMP"/*.log; do
			[[ -s $f ]] || continue
			echo "--- $f (last 15 lines)" >&2
			tail -n 15 "$f" >&2
		done
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! ss -Htan "sport = :$1" | grep -q .; }
# A block of 20 free ports.
BASE=
for b in 16400 16420 16440 16460 16480 16500 16520 16540 16560 16580; do
	ok=1
	for ((p = b; p < b + 20; p++)); do port_free "$p" || { ok=0; break; }; done
	if ((ok)); then BASE=$b; break; fi
done
[[ -n $BASE ]] || fail "unit: no 20 free ports in 16400-16599"

(umask 077; openssl rand -hex 32 >"$TMP/secret")
(umask 077; openssl rand -base64 48 | tr -d '\n' | tr '+/' '-_' | tr -d '=' >"$TMP/secret64"; echo >>"$TMP/secret64")

# ---- password derivation: shell generator == C ------------------------------
rc=1
for s in secret secret64; do
	for info in redis sentinel; do
		a=$("$GEN" --secret-file "$TMP/$s" --print-password $info)
		b=$("$HA_TEST" derive "$TMP/$s" "mesh/v1/$info")
		[[ $a =~ ^[0-9a-f]{64}$ && $a == "$b" ]] || fail "derive-$s-$info: generator $a vs C $b"
	done
done
echo "PASS derive (hex and base64 secrets, redis and sentinel)"

wait_ping() { # wait_ping PORT PASSWORD
	local i
	for ((i = 0; i < 100; i++)); do
		redis-cli -p "$1" -a "$2" --no-auth-warning ping 2>/dev/null | grep -q PONG && return 0
		sleep 0.05
	done
	return 1
}

# ---- phase 1: one password-protected Redis ----------------------------------
RPW=$("$GEN" --secret-file "$TMP/secret" --print-password redis)
mkdir -p "$TMP/solo"
P=$BASE
cat >"$TMP/solo/redis.conf" <<EOF
bind 127.0.0.1
port $P
dir $TMP/solo
save ""
appendonly no
requirepass $RPW
EOF
redis-server "$TMP/solo/redis.conf" >"$TMP/solo-redis.log" 2>&1 &
PIDS+=($!)
wait_ping "$P" "$RPW" || fail "unit: redis-server on $P did not start"

echo "== ha-test against one Redis (127.0.0.1:$P, password derived from the secret)"
"$HA_TEST" --redis "redis://127.0.0.1:$P" --secret-file "$TMP/secret" || { rc=1; exit 1; }

# ---- phase 2: three Redis + three Sentinels, quorum 2 -----------------------
N=()
for i in 0 1 2; do N+=("--node" "n$i=127.0.0.1:$((BASE + 2 + i)):$((BASE + 10 + i))"); done
"$GEN" --secret-file "$TMP/secret" --out "$TMP/ha" --down-after-ms 1000 \
	--failover-timeout-ms 6000 "${N[@]}" >/dev/null
SPW=$("$GEN" --secret-file "$TMP/secret" --print-password sentinel)
for i in 0 1 2; do
	redis-server "$TMP/ha/n$i/redis.conf" >"$TMP/n$i-redis.log" 2>&1 &
	PIDS+=($!)
done
for i in 0 1 2; do wait_ping $((BASE + 2 + i)) "$RPW" || fail "unit: redis n$i did not start"; done
for i in 0 1 2; do
	redis-sentinel "$TMP/ha/n$i/sentinel.conf" >"$TMP/n$i-sentinel.log" 2>&1 &
	PIDS+=($!)
done
# A Sentinel learns the replicas from the master's INFO (every 10 s) and
# the other Sentinels from hello messages: wait until all know everything,
# or a failover would find "no good replica".
known() {
	local i s r
	for i in 0 1 2; do
		s=$(redis-cli -p $((BASE + 10 + i)) -a "$SPW" --no-auth-warning sentinel master mesh 2>/dev/null |
			paste - - | awk '$1=="num-other-sentinels"{print $2}')
		r=$(redis-cli -p $((BASE + 10 + i)) -a "$SPW" --no-auth-warning sentinel master mesh 2>/dev/null |
			paste - - | awk '$1=="num-slaves"{print $2}')
		[[ $s == 2 && $r == 2 ]] || return 1
	done
}
for ((i = 0; i < 300; i++)); do known && break; sleep 0.1; done
known || fail "unit: the Sentinels did not learn the topology within 30 s"
SENT="127.0.0.1:$((BASE + 10)),127.0.0.1:$((BASE + 11)),127.0.0.1:$((BASE + 12))"
echo "== ha-test against three Redis + three Sentinels ($SENT)"
"$HA_TEST" --sentinel "$SENT" --secret-file "$TMP/secret" || { rc=1; exit 1; }
rc=0
