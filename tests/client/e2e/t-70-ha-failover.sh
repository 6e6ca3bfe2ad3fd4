#!/usr/bin/env bash
# t-70-ha-failover: mesh-clients ride through the death of a coordinator
# host in a three-coordinator `--ha` cluster (c0..c2, each with
# `coordinator --ha`, redis-server and redis-sentinel; docs/ha.md).
#   Two peers s1, s2 behind symmetric NATs, told only c0's URL: a TURN
#   relay is selected; R is the coordinator host holding that relay.
#   Two peers w1, w2 behind EIM NATs, told only R's URL: a direct link.
#   Every client learns the other two coordinators from /v1/coordinators
#   and polls one of them at a time (shared mailbox).
#   Host R dies whole, like a machine losing power: its link goes down,
#   then SIGKILL to its coordinator, Redis and Sentinel (no answer, no
#   reset). Then:
#   - the two other coordinators serve the mailbox again;
#   - w1 and w2 notice (health probe) and fail over to a survivor for
#     signaling (/v1/status, the log, the failover counter);
#   - every client leaves R's STUN/TURN servers out of new ICE sessions;
#   - the direct w1-w2 link stays up, TCP forwarding through it works;
#   - the s1-s2 link, whose relay died, is re-made through a survivor's
#     TURN relay and TCP flows again (the time it took is printed);
#   - w2 is killed -9 and started again with "R,survivor" as its list:
#     the link is re-made through the survivors within 15 s.
# Limits are generous (the machine has 2 cores and runs other work); the
# times themselves are printed as "# ..." lines.
source "$(dirname "$0")/lib.sh"
e2e_init_ha
netlab_nat n-e1 198.18.0.101 eim 198.18.1.0/24
netlab_host_behind n-e1 e1 198.18.1.10
netlab_nat n-e2 198.18.0.102 eim 198.18.2.0/24
netlab_host_behind n-e2 e2 198.18.2.10
netlab_nat n-s1 198.18.0.103 symmetric 198.18.3.0/24
netlab_host_behind n-s1 s1 198.18.3.10
netlab_nat n-s2 198.18.0.104 symmetric 198.18.4.0/24
netlab_host_behind n-s2 s2 198.18.4.10

PW='{"peers":[{"id":"w1","ports":[18000]},{"id":"w2","ports":[18001]}]}'
PS='{"peers":[{"id":"s1","ports":[18000]},{"id":"s2","ports":[18001]}]}'
e2e_tcp_echo e2 18001
e2e_tcp_echo s2 18001

# sig HOST FIELD: a field of the client's /v1/status "signaling" object.
sig() { e2e_json "$1" /v1/status | jq -r ".signaling.$2" 2>/dev/null; }
# peerf HOST FIELD: a field of the client's one link in /v1/status.
peerf() { e2e_json "$1" /v1/status | jq -r ".peers[0].$2" 2>/dev/null; }
# relay_host HOST: index of the coordinator holding the relay of HOST's
# selected pair (its own relay, else the peer's).
relay_host() {
	local js ip
	js=$(e2e_json "$1" /v1/status) || return 1
	ip=$(jq -r '.peers[0] | .local, .remote' <<<"$js" |
		sed -n 's/^relay-[a-z]* \(198\.18\.0\.1[0-2]\):[0-9]*$/\1/p' | head -n1)
	[[ -n $ip ]] && e2e_ha_index "$ip"
}
# learnt HOST: the client knows three coordinators sharing one mailbox.
learnt() { [[ $(sig "$1" coordinators) == 3 && $(sig "$1" shared) == true ]]; }
wait_true() { # wait_true SECONDS CMD...: CMD succeeds within SECONDS
	local end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@"; do
		(($(now_ms) < end)) || return 1
		sleep 0.2
	done
}

# ---- before: relay link, direct link, three coordinators learnt -------------
e2e_coords s1 "$(e2e_ha_url 0)"
e2e_coords s2 "$(e2e_ha_url 0)"
t0=$(now_ms)
e2e_start s1 s1 "$PS"
e2e_start s2 s2 "$PS"
if e2e_wait_all 30 s1 s2; then
	ok "symmetric pair up through a relay in $(($(now_ms) - t0)) ms (told only c0)"
else
	notok "symmetric pair up" "not within 30 s"
	e2e_finish
	exit 1
fi
check "s1-s2 path is relay-udp (got $(e2e_field s1 s2 3))" test "$(e2e_field s1 s2 3)" = relay-udp
R=$(relay_host s1) || R=
if [[ -z $R ]]; then
	notok "relay host" "no coordinator address in s1's pair: $(peerf s1 local) -> $(peerf s1 remote)"
	e2e_finish
	exit 1
fi
RURL=$(e2e_ha_url "$R")
echo "# s1-s2 relayed by c$R: $(peerf s1 local) -> $(peerf s1 remote)"

e2e_coords e1 "$RURL"
e2e_coords e2 "$RURL"
t0=$(now_ms)
e2e_start e1 w1 "$PW"
e2e_start e2 w2 "$PW"
if e2e_wait_all 20 e1 e2; then
	ok "eim pair up in $(($(now_ms) - t0)) ms (told only c$R)"
else
	notok "eim pair up" "not within 20 s"
	e2e_finish
	exit 1
fi
p=$(e2e_field e1 w2 3)
check "w1-w2 path is direct (got $p)" test "$p" = srflx -o "$p" = prflx -o "$p" = host
e2e_expect "w1->w2 tcp before the kill" "tcp e2 before 127.0.0.1:18000" e2e_tcp e1 18001 before
e2e_expect "s1->s2 tcp before the kill" "tcp s2 before 127.0.0.1:18000" e2e_tcp s1 18001 before
for h in e1 e2 s1 s2; do
	if wait_true 15 learnt "$h"; then
		ok "$h learnt 3 coordinators from /v1/coordinators (shared mailbox)"
	else
		notok "$h learnt the coordinators" "coordinators $(sig "$h" coordinators), shared $(sig "$h" shared)"
	fi
done
for h in e1 e2; do
	check "$h signals through c$R, the one it was told (got $(sig "$h" current))" \
		test "$(sig "$h" current)" = "$RURL"
done
if wait_true 40 e2e_ha_topology_ok 0 1 2; then
	ok "sentinels see the whole topology (a failover can elect a replica)"
else
	notok "sentinel topology" "not complete within 40 s"
fi

# ---- the kill -------------------------------------------------------------------
ep_w=$(e2e_field e1 w2 8)
ep_s=$(e2e_field s1 s2 8)
S1=$(((R + 1) % 3)) S2=$(((R + 2) % 3))
e2e_ha_kill_host "$R"
tk=$(now_ms)
echo "# killed host c$R (coordinator, redis, sentinel; link down)"

# Watch everything at once for up to 60 s; each event's time from the kill.
t_srv='' t_fo1='' t_fo2='' t_relay=''
while (($(now_ms) - tk < 60000)); do
	now=$(($(now_ms) - tk))
	[[ -z $t_srv ]] && e2e_ha_serves "$S1" "$S2" && t_srv=$now
	c=$(sig e1 current)
	[[ -z $t_fo1 && -n $c && $c != "$RURL" && $c != null ]] && t_fo1=$now
	c=$(sig e2 current)
	[[ -z $t_fo2 && -n $c && $c != "$RURL" && $c != null ]] && t_fo2=$now
	if [[ -z $t_relay ]] && e2e_up s1 s2 && e2e_up s2 s1 &&
		[[ $(e2e_field s1 s2 8) != "$ep_s" ]]; then
		r=$(relay_host s1) || r=
		[[ -n $r && $r != "$R" ]] && t_relay=$now
	fi
	[[ -n $t_srv && -n $t_fo1 && -n $t_fo2 && -n $t_relay ]] && break
	sleep 0.3
done

# Scenario 1: the direct link and the signaling failover.
if [[ -n $t_srv ]] && ((t_srv <= 20000)); then
	ok "c$S1 and c$S2 serve the mailbox again $t_srv ms after the kill (limit 20000)"
else
	notok "survivors serve" "no publish via c$S1 and poll via c$S2 within 20 s (${t_srv:-never})"
fi
for h in e1 e2; do
	if [[ $h == e1 ]]; then t=$t_fo1; else t=$t_fo2; fi
	if [[ -n $t ]] && ((t <= 20000)); then
		ok "$h failed over to $(sig "$h" current) $t ms after the kill (limit 20000)"
	else
		notok "$h failover" "still on '$(sig "$h" current)' 20 s after the kill"
	fi
	check "$h logged the failover from c$R" e2e_log_has "$h" "failing over from $RURL to "
	n=$(e2e_json "$h" /metrics | awk '$1 == "mesh_client_signal_failovers_total" { print $2 }')
	check "$h counted it (mesh_client_signal_failovers_total ${n:-none})" test "${n:-0}" -ge 1
done
grep -h "signal.*failing over\|signal.*does not answer" "${E2E_LOG[e1]}" | head -3 | sed 's/^/# e1: /'
# Its STUN/TURN servers are no longer offered to new ICE sessions: at once
# where it was the polled coordinator (always for w1, w2), else after the
# health check beside the next /v1/coordinators refresh, or when the
# registry dropped it.
left_out() {
	e2e_log_has "$1" "coordinator $RURL gives no answer: its STUN/TURN servers are left out" ||
		e2e_log_has "$1" "coordinator $RURL left the registry"
}
for h in e1 e2 s1 s2; do
	if wait_true 40 left_out "$h"; then
		ok "$h leaves c$R's STUN/TURN out of new ICE sessions"
	else
		notok "$h leaves c$R's STUN/TURN out" "no such log line 40 s after the kill"
	fi
done
check "w1-w2 link stayed up through the kill (epoch $ep_w, got $(e2e_field e1 w2 8))" \
	test "$(e2e_field e1 w2 8)" = "$ep_w" -a "$(e2e_field e1 w2 2)" = up
e2e_expect "w1->w2 tcp after the kill" "tcp e2 after 127.0.0.1:18000" e2e_tcp e1 18001 after

# Scenario 2: the relayed link re-made through a survivor's relay.
if [[ -n $t_relay ]] && ((t_relay <= 45000)); then
	ok "s1-s2 re-made through c$(relay_host s1)'s relay $t_relay ms after c$R died (limit 45000)"
else
	notok "s1-s2 re-made through a survivor's relay" \
		"not within 45 s: $(e2e_field s1 s2 2) $(peerf s1 local) -> $(peerf s1 remote)"
fi
echo "# s1-s2 now: $(peerf s1 local) -> $(peerf s1 remote), epoch $(e2e_field s1 s2 8)"
grep -h "link down\|link up" "${E2E_LOG[s1]}" | tail -2 | sed 's/^/# s1: /'
check "s1-s2 path is relay-udp again (got $(e2e_field s1 s2 3))" test "$(e2e_field s1 s2 3)" = relay-udp
e2e_expect "s1->s2 tcp through the new relay" "tcp s2 again 127.0.0.1:18000" e2e_tcp s1 18001 again

# ---- a client restarts while c$R is dead ----------------------------------------
# Told "R,survivor" (the dead one first): it must find the survivor and the
# link must be re-made through the survivors' shared mailbox.
e2e_kill9 e2
e2e_coords e2 "$RURL,$(e2e_ha_url "$S1")"
t0=$(now_ms)
e2e_restart e2
ms=
while (($(now_ms) - t0 < 20000)); do
	if e2e_up e2 w1 && e2e_up e1 w2 && [[ $(e2e_field e1 w2 8) != "$ep_w" ]]; then
		ms=$(($(now_ms) - t0))
		break
	fi
	sleep 0.1
done
if [[ -n $ms ]] && ((ms <= 15000)); then
	ok "w2 restarted (kill -9) while c$R is dead: link re-made in $ms ms (limit 15000)"
else
	notok "w2 restart through the survivors" "link not re-made within 15 s"
fi
c=$(sig e2 current)
check "restarted w2 signals through a survivor (got $c)" test -n "$c" -a "$c" != "$RURL" -a "$c" != null
p=$(e2e_field e1 w2 3)
check "w1-w2 path is direct again (got $p)" test "$p" = srflx -o "$p" = prflx -o "$p" = host
e2e_expect "w1->w2 tcp after the restart" "tcp e2 restart 127.0.0.1:18000" e2e_tcp e1 18001 restart
e2e_finish
