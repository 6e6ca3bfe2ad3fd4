#!/usr/bin/env bash
# compose/ha/run-local.sh: the three-node HA layout (docs/ha.md) on one
# machine, on loopback, to try it out: 3 x redis-server, 3 x
# redis-sentinel and 3 x `coordinator --ha`, configured by
# ha/gen-config.sh exactly as on three hosts (only the ports differ).
# Prints the URLs and the commands to watch, then runs until Ctrl-C and
# removes everything it started and wrote. It must not be used as a
# production deployment: all three "hosts" die with this machine.
#
# usage: compose/ha/run-local.sh [--secret-file F] [--base-port 7100]
#   node i (0..2): HTTP BASE+10i, STUN/TURN BASE+10i+1, relays BASE+10i+2..+9,
#                  Redis BASE+100+i, Sentinel BASE+200+i
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE=7100 SECRET=
while (($#)); do
	case $1 in
	--secret-file) SECRET=${2:?}; shift 2 ;;
	--base-port) BASE=${2:?}; shift 2 ;;
	-h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-local: unknown option $1" >&2; exit 2 ;;
	esac
done
BIN=${BIN:-bin}
for t in redis-server redis-sentinel redis-cli openssl "$BIN/coordinator"; do
	if [[ $t == */* ]]; then [[ -x $t ]] || { echo "run-local: $t missing (make)" >&2; exit 2; }
	else command -v "$t" >/dev/null || { echo "run-local: $t missing (make deps)" >&2; exit 2; }; fi
done

DIR=$(mktemp -d /tmp/mesh-ha-local.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$DIR"
	echo "run-local: stopped, $DIR removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z $SECRET ]]; then
	SECRET=$DIR/secret
	(umask 077; openssl rand -hex 32 >"$SECRET")
fi
NODES=()
SENT=
for i in 0 1 2; do
	NODES+=(--node "c$i=127.0.0.1:$((BASE + 100 + i)):$((BASE + 200 + i))")
	SENT+="${SENT:+,}127.0.0.1:$((BASE + 200 + i))"
done
bash ha/gen-config.sh --secret-file "$SECRET" --out "$DIR/cfg" "${NODES[@]}"

for i in 0 1 2; do
	redis-server "$DIR/cfg/c$i/redis.conf" >"$DIR/redis-c$i.log" 2>&1 &
	PIDS+=($!)
done
sleep 0.5
for i in 0 1 2; do
	redis-sentinel "$DIR/cfg/c$i/sentinel.conf" >"$DIR/sentinel-c$i.log" 2>&1 &
	PIDS+=($!)
done
for i in 0 1 2; do
	h=$((BASE + 10 * i))
	TMPDIR=$DIR "$BIN/coordinator" --ha --sentinel "$SENT" --node-id "c$i" --listen 127.0.0.1 \
		--public-ip 127.0.0.1 --http-port "$h" --stun-port $((h + 1)) --tls-port 0 \
		--relay-ports "$((h + 2))-$((h + 9))" --secret-file "$SECRET" \
		>"$DIR/coordinator-c$i.log" 2>&1 &
	PIDS+=($!)
done

cat <<EOF
run-local: three nodes on 127.0.0.1 (files and logs in $DIR)
  coordinators: http://127.0.0.1:$BASE  http://127.0.0.1:$((BASE + 10))  http://127.0.0.1:$((BASE + 20))
  passwords:    SPW=\$(ha/gen-config.sh --secret-file $SECRET --print-password sentinel)
                RPW=\$(ha/gen-config.sh --secret-file $SECRET --print-password redis)
  master:       redis-cli -p $((BASE + 200)) -a "\$SPW" --no-auth-warning sentinel get-master-addr-by-name mesh
  readiness:    curl -s http://127.0.0.1:$BASE/v1/ready ; curl -s http://127.0.0.1:$BASE/metrics | grep mesh_redis
  failover:     redis-cli -p <master port> -a "\$RPW" --no-auth-warning debug sleep 30   (or kill it)
  Sentinels learn the replicas within about 10 s; before that a failover aborts.
Ctrl-C stops everything.
EOF
wait
