#!/usr/bin/env bash
# tests/ha/cluster.sh: three coordinator hosts c0..c2 on the public segment
# 198.18.0.0/24 (netlab), each running redis-server, redis-sentinel and
# `coordinator --ha` with the configuration from ha/gen-config.sh, and a
# client host cl that drives them with bin/meshreq. Scenarios (issue 4):
#   start       all ready, registry lists all three
#   wake        a publish through one coordinator answers a poll parked on
#               another within 100 ms
#   master      kill -9 the Redis master: publish/poll work again within
#               15 s, /v1/ready said 503 meanwhile, accepted messages kept
#   host        kill -9 a whole host: the other two serve; /v1/coordinators
#               drops it within 10 s and re-adds it within 5 s of its return
#   partition   cut the master's host off from the other two (iptables in
#               its namespace): it refuses writes (503), the majority fails
#               over and serves; after healing no duplicate, stale-epoch or
#               minority-side message is ever delivered
# Owns only its netlab run (namespaces, processes, files); netlab.sh removes
# all of it on exit, failure or signal. Prints PASS/FAIL lines; exit 1 on
# any failure. Needs root. Timing: about 2 minutes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
source "$ROOT/tests/netlab/netlab.sh"

BIN=${BIN:-bin}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
COORD=$BIN/coordinator
MESHREQ=$BIN/meshreq
netlab_require redis-server redis-sentinel redis-cli jq openssl "$COORD" "$MESHREQ"
netlab_init

FAILS=0
pass() { netlab_pass "ha/$1"; }
fail() { netlab_fail "ha/$1" "${@:2}" || true; FAILS=$((FAILS + 1)); }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

IP=(198.18.0.10 198.18.0.11 198.18.0.12)
CL=198.18.0.100
HTTP=7000
for i in 0 1 2; do netlab_public_host "c$i" "${IP[i]}"; done
netlab_public_host cl $CL

SECRET=$NETLAB_DIR/secret
(umask 077; openssl rand -hex 32 >"$SECRET")
CFG=$NETLAB_DIR/cfg
bash "$ROOT/ha/gen-config.sh" --secret-file "$SECRET" --out "$CFG" --down-after-ms 2000 \
	--failover-timeout-ms 10000 --node "c0=${IP[0]}" --node "c1=${IP[1]}" --node "c2=${IP[2]}"
SPW=$(bash "$ROOT/ha/gen-config.sh" --secret-file "$SECRET" --print-password sentinel)

declare -A RPID SPID CPID
start_redis() {
	netlab_spawn "c$1" redis-server "$CFG/c$1/redis.conf"
	RPID[$1]=$NETLAB_LAST_PID
}
start_sentinel() {
	netlab_spawn "c$1" redis-sentinel "$CFG/c$1/sentinel.conf"
	SPID[$1]=$NETLAB_LAST_PID
}
start_coord() {
	local envs
	mapfile -t envs < <(grep -v '^#' "$CFG/c$1/coordinator.env")
	# TMPDIR: the relay's scratch folder goes with the run, even after kill -9.
	netlab_spawn "c$1" env "${envs[@]}" TMPDIR="$NETLAB_DIR" "$COORD" --secret-file "$SECRET" --stun-port 3478 \
		--tls-port 5349 --relay-ports 49152-49200 --message-ttl 120 --log-level info
	CPID[$1]=$NETLAB_LAST_PID
}

# ---- requests from the client host ------------------------------------------
STATUS= BODY=
# req HOST-INDEX PEER METHOD PATH [BODY]: signed request; sets STATUS, BODY.
req() {
	local i=$1 peer=$2 m=$3 path=$4 err=$NETLAB_DIR/req.$BASHPID.err
	shift 4
	BODY=$(NETLAB_TIMEOUT=45 netlab_exec cl "$MESHREQ" --secret-file "$SECRET" --peer "$peer" \
		--timeout 40 "$m" "http://${IP[i]}:$HTTP$path" "$@" 2>"$err") || true
	STATUS=$(sed -n 's/^HTTP \([0-9]\{3\}\).*/\1/p' "$err" | tail -n1)
	STATUS=${STATUS:-000}
}
get() { # get HOST-INDEX PATH: unsigned
	local err=$NETLAB_DIR/get.$BASHPID.err
	BODY=$(NETLAB_TIMEOUT=10 netlab_exec cl "$MESHREQ" --no-auth --timeout 3 GET \
		"http://${IP[$1]}:$HTTP$2" 2>"$err") || true
	STATUS=$(sed -n 's/^HTTP \([0-9]\{3\}\).*/\1/p' "$err" | tail -n1)
	STATUS=${STATUS:-000}
}
PSIG=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
publish() { # publish HOST FROM TO EPOCH PAYLOAD
	req "$1" "$2" POST /v1/publish \
		"{\"from\":\"$2\",\"to\":\"$3\",\"epoch\":$4,\"kind\":\"offer\",\"payload\":\"$5\",\"psig\":\"$PSIG\"}"
}
poll() { # poll HOST PEER [QUERY]
	req "$1" "$2" GET "/v1/poll?wait=0${3:+&$3}"
}
ready() { get "$1" /v1/ready; [[ $STATUS == 200 ]]; }
listed() { # listed HOST-INDEX ID: /v1/coordinators on HOST lists ID
	req "$1" probe GET /v1/coordinators
	[[ $STATUS == 200 ]] && jq -e --arg id "$2" '.coordinators | any(.id == $id)' <<<"$BODY" >/dev/null
}
sentinel_q() { # sentinel_q HOST-INDEX ARGS...: a Sentinel query as JSON
	local i=$1
	shift
	NETLAB_TIMEOUT=5 netlab_exec "c$i" redis-cli --json -h "${IP[i]}" -p 26379 -a "$SPW" \
		--no-auth-warning "$@" 2>/dev/null
}
master_index() { # the host index the Sentinels (majority view of c$1) call master
	local ip
	ip=$(sentinel_q "$1" sentinel get-master-addr-by-name mesh | jq -r '.[0]' 2>/dev/null) || return 1
	for i in 0 1 2; do [[ ${IP[i]} == "$ip" ]] && { echo "$i"; return 0; }; done
	return 1
}
# Every live Sentinel sees the master, 2 other Sentinels and N healthy replicas.
topology_ok() {
	local want=$1 i s
	for i in "${@:2}"; do
		s=$(sentinel_q "$i" sentinel master mesh) || return 1
		[[ $(jq -r '."num-other-sentinels"' <<<"$s") -ge $((${#@} - 2)) ]] || return 1
		s=$(sentinel_q "$i" sentinel replicas mesh) || return 1
		[[ $(jq '[.[] | select(.flags == "slave")] | length' <<<"$s") -ge $want ]] || return 1
	done
}
wait_for() { # wait_for SECONDS CMD...: true once CMD succeeds
	local end=$(($(now_ms) + $1 * 1000))
	shift
	while (($(now_ms) < end)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
	return 1
}

# ---- start ---------------------------------------------------------------------
for i in 0 1 2; do start_redis $i; done
for i in 0 1 2; do netlab_wait_listen "c$i" tcp 6379 10; done
for i in 0 1 2; do start_sentinel $i; done
for i in 0 1 2; do netlab_wait_listen "c$i" tcp 26379 10; done
for i in 0 1 2; do start_coord $i; done
t0=$(now_ms)
if wait_for 40 topology_ok 2 0 1 2 && wait_for 30 ready 0 && wait_for 10 ready 1 &&
	wait_for 10 ready 2; then
	pass "start ($(($(now_ms) - t0)) ms to a full topology and three ready coordinators)"
else
	fail start "cluster not up within 80 s (ready c0..c2: $(for i in 0 1 2; do get $i /v1/ready; printf '%s ' "$STATUS"; done))"
	exit 1
fi
if wait_for 6 listed 0 c1 && wait_for 6 listed 0 c2 && wait_for 6 listed 1 c0 && wait_for 6 listed 2 c0; then
	pass registry-start
else
	fail registry-start "coordinators do not list each other: $BODY"
fi

# ---- wake across coordinators ---------------------------------------------------------
worst=0
ok=1
for round in 1 2 3; do
	out=$NETLAB_DIR/poll.$round
	(
		req 1 wq GET "/v1/poll?wait=10"
		echo "$(now_ms) $STATUS $BODY" >"$out"
	) &
	ppid=$!
	sleep 0.7
	t0=$(now_ms)
	publish 0 wp wq 1 "wake$round"
	pst=$STATUS
	wait $ppid || true
	read -r t1 st body <"$out" || true
	lat=$((t1 - t0))
	((lat > worst)) && worst=$lat
	if [[ $pst != 202 || $st != 200 ]] || ! jq -e --arg p "wake$round" '.messages | any(.payload == $p)' <<<"$body" >/dev/null; then
		ok=0
		fail wake "round $round: publish $pst, poll $st $body"
	fi
	cur=$(jq -r .cursor <<<"$body")
	req 1 wq GET "/v1/poll?wait=0&cursor=$cur"
done
if ((ok)) && ((worst <= 100)); then
	pass "wake (publish via c0 answered a poll parked on c1; worst $worst ms incl. process start)"
elif ((ok)); then
	fail wake "worst wake $worst ms > 100 ms"
fi

# ---- kill -9 the Redis master -----------------------------------------------------------
M=$(master_index 0)
publish 0 ka kb 5 kept-across-failover
[[ $STATUS == 202 ]] || fail master-kill "publish before the kill: $STATUS $BODY"
kill -9 "${RPID[$M]}"
t0=$(now_ms)
declare -A SAW503=()
back=
while (($(now_ms) - t0 < 20000)); do
	for i in 0 1 2; do
		get $i /v1/ready
		[[ $STATUS == 503 ]] && SAW503[$i]=1
	done
	publish $(((M + 1) % 3)) ka kb 5 after-kill
	if [[ $STATUS == 202 ]]; then
		poll $(((M + 2) % 3)) kb
		if [[ $STATUS == 200 ]]; then
			back=$(($(now_ms) - t0))
			break
		fi
	fi
	sleep 0.2
done
if [[ -n $back ]] && ((back <= 15000)); then
	pass "master-kill (c$M's Redis killed; publish and poll work again after $back ms)"
else
	fail master-kill "not serving within 15 s (back after ${back:-never} ms)"
fi
if [[ ${SAW503[0]:-} && ${SAW503[1]:-} && ${SAW503[2]:-} ]]; then
	pass "master-kill-ready (every /v1/ready answered 503 during the outage)"
else
	fail master-kill-ready "/v1/ready 503 seen on: ${!SAW503[*]}"
fi
# A publish answered 503 may still have been queued (documented): retries
# can add copies of "after-kill", never lose or reorder the accepted one.
if jq -e '[.messages[].payload] | (.[0] == "kept-across-failover" and length >= 2 and (.[1:] | all(. == "after-kill")))' <<<"$BODY" >/dev/null; then
	pass master-kill-kept
else
	fail master-kill-kept "queued messages after the failover: $BODY"
fi
cur=$(jq -r .cursor <<<"$BODY" 2>/dev/null || echo "")
poll 0 kb "cursor=$cur"
# The killed server returns and becomes a replica.
start_redis "$M"
if wait_for 40 topology_ok 2 0 1 2; then
	pass "master-rejoin (c$M's Redis is a replica again)"
else
	fail master-rejoin "Sentinels do not see two healthy replicas"
fi
get 0 /metrics
fo=$(awk '$1=="mesh_redis_failovers_total"{print $2}' <<<"$BODY")
[[ ${fo:-0} -ge 1 ]] && pass "failover-metric (mesh_redis_failovers_total $fo)" ||
	fail failover-metric "mesh_redis_failovers_total '${fo:-}'"

# ---- kill -9 a whole host -------------------------------------------------------------------
K=$(master_index 0)
A=$(((K + 1) % 3)) Bh=$(((K + 2) % 3))
publish $A ha hb 1 before-host-kill
kill -9 "${RPID[$K]}" "${SPID[$K]}" "${CPID[$K]}" 2>/dev/null || true
for p in $(ip netns pids "$(netlab_ns "c$K")" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
t0=$(now_ms)
back=
while (($(now_ms) - t0 < 20000)); do
	publish $A ha hb 1 after-host-kill
	if [[ $STATUS == 202 ]]; then
		poll $Bh hb
		[[ $STATUS == 200 ]] && { back=$(($(now_ms) - t0)); break; }
	fi
	sleep 0.2
done
if [[ -n $back ]] && ((back <= 15000)); then
	pass "host-kill (c$K gone; c$A and c$Bh serve after $back ms)"
else
	fail host-kill "survivors not serving within 15 s"
fi
if jq -e '[.messages[].payload] | index("before-host-kill") != null' <<<"$BODY" >/dev/null; then
	pass host-kill-kept
else
	fail host-kill-kept "message from before the host died is gone: $BODY"
fi
dropped=
while (($(now_ms) - t0 < 12000)); do
	if ! listed "$A" "c$K"; then dropped=$(($(now_ms) - t0)); break; fi
	sleep 0.2
done
if [[ -n $dropped ]] && ((dropped <= 10000)); then
	pass "registry-drop (c$K dropped from c$A's list $dropped ms after it died)"
else
	fail registry-drop "c$K still listed 10 s after it died (${dropped:-never})"
fi
# The host returns.
start_redis "$K"
start_sentinel "$K"
start_coord "$K"
if wait_for 30 ready "$K"; then
	tr=$(now_ms)
	if wait_for 5 listed "$A" "c$K" && wait_for 1 listed "$Bh" "c$K"; then
		pass "registry-return (c$K listed by the others $(($(now_ms) - tr)) ms after it was ready)"
	else
		fail registry-return "c$K not listed within 5 s of being ready"
	fi
else
	fail host-return "c$K not ready within 30 s of its restart"
fi
wait_for 40 topology_ok 2 0 1 2 || fail host-return "topology not whole again"
poll $A hb
cur=$(jq -r .cursor <<<"$BODY" 2>/dev/null || echo "")
poll $A hb "cursor=$cur"

# ---- partition the master's host --------------------------------------------------------------
P=$(master_index 0)
A=$(((P + 1) % 3)) Bh=$(((P + 2) % 3))
publish $P pp pq 1 old-epoch
[[ $STATUS == 202 ]] || fail partition "publish before the partition: $STATUS"
for j in 0 1 2; do
	((j == P)) && continue
	netlab_exec "c$P" iptables -w 5 -A INPUT -s "${IP[j]}" -j DROP
	netlab_exec "c$P" iptables -w 5 -A OUTPUT -d "${IP[j]}" -j DROP
done
t0=$(now_ms)
# The cut-off side must stop accepting writes it cannot replicate.
minority_accepted=0
refused=
while (($(now_ms) - t0 < 8000)); do
	publish $P pp pq 1 minority-side
	if [[ $STATUS == 202 ]]; then
		minority_accepted=$((minority_accepted + 1))
	else
		refused=$STATUS
		break
	fi
	sleep 0.2
done
if ((minority_accepted == 0)) && [[ $refused == 503 ]]; then
	pass "partition-minority (c$P refuses writes with 503 as soon as it is cut off)"
else
	fail partition-minority "c$P accepted $minority_accepted writes while cut off (then ${refused:-nothing})"
fi
not_ready() { ! ready "$1"; }
if wait_for 5 not_ready "$P"; then
	pass "partition-minority-ready (c$P's /v1/ready says 503)"
else
	fail partition-minority-ready "c$P still says ready"
fi
# The majority side fails over and serves; epoch 2 purges the old message.
# Each attempt carries its own payload: a 503 during the failover means
# "not known to be stored" (docs/ha.md), so an earlier attempt may still
# show up later; what must never show up is the old epoch or the
# minority side's writes, and nothing twice.
back= accepted= attempt=0
while (($(now_ms) - t0 < 20000)); do
	attempt=$((attempt + 1))
	publish $A pp pq 2 "new-epoch-$attempt"
	[[ $STATUS == 202 ]] && { back=$(($(now_ms) - t0)); accepted="new-epoch-$attempt"; break; }
	sleep 0.2
done
if [[ -n $back ]] && ((back <= 15000)); then
	pass "partition-majority (c$A serves after $back ms)"
else
	fail partition-majority "majority not serving within 15 s"
fi
publish $P pp pq 1 minority-late
[[ $STATUS != 202 ]] || fail partition-minority "c$P accepted a write after the failover"
# Heal.
netlab_exec "c$P" iptables -w 5 -F INPUT
netlab_exec "c$P" iptables -w 5 -F OUTPUT
th=$(now_ms)
if wait_for 40 topology_ok 2 0 1 2 && wait_for 20 ready "$P"; then
	pass "partition-heal (c$P ready again $(($(now_ms) - th)) ms after healing)"
else
	fail partition-heal "cluster not whole 60 s after healing"
fi
# Converged: every coordinator delivers the same messages, all of epoch 2
# from the majority side, the accepted one among them, none twice.
conv=1
ref=
for i in 0 1 2; do
	# Just after healing, a coordinator may still answer 503 for a moment
	# (its Redis connections settling): that is an honest "not now", so
	# ask again for up to 10 s; only a 200's content is judged.
	for _ in $(seq 50); do
		poll $i pq
		[[ $STATUS == 200 ]] && break
		sleep 0.2
	done
	got=$(jq -c '[.messages[] | {id, epoch, payload}]' <<<"$BODY" 2>/dev/null || echo "?")
	if ! jq -e --arg acc "$accepted" 'length >= 1 and all(.epoch == 2 and (.payload | startswith("new-epoch-")))
		and any(.payload == $acc) and ([.[].id] | length == (unique | length))' <<<"$got" >/dev/null; then
		conv=0
		fail partition-converged "c$i delivers $got"
	fi
	[[ -z $ref ]] && ref=$got
	if [[ $got != "$ref" ]]; then
		conv=0
		fail partition-converged "c$i delivers $got, c0 $ref"
	fi
done
if ((conv)); then
	pass "partition-converged (same $(jq length <<<"$ref") new-epoch message(s) everywhere; no old-epoch, minority or repeated message)"
fi
last=$(jq -r '.[-1].id' <<<"$ref" 2>/dev/null || echo "")
poll $A pq "cursor=$last"
poll $P pq
if [[ $STATUS == 200 ]] && jq -e '.messages == []' <<<"$BODY" >/dev/null; then
	pass "partition-no-duplicate (acknowledged via c$A, gone via c$P)"
else
	fail partition-no-duplicate "after the ack c$P delivers $BODY"
fi

echo "ha cluster: $FAILS failed"
((FAILS == 0))
