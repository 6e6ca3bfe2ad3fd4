#!/usr/bin/env bash
# t-50-restart: a peer killed with SIGKILL and restarted is back in a link
# within 5 s of its start (either role); a peer that dies without a word is
# declared dead within 15 s and a new epoch starts; both peers of a pair
# restarted at the same moment 20 times in a row converge every time.
source "$(dirname "$0")/lib.sh"
e2e_init
netlab_nat n-e1 198.18.0.101 eim 198.18.1.0/24
netlab_host_behind n-e1 e1 198.18.1.10
netlab_nat n-e2 198.18.0.102 eim 198.18.2.0/24
netlab_host_behind n-e2 e2 198.18.2.10
e2e_coordinator
PEERS='{"peers":[{"id":"w1","ports":[18000]},{"id":"w2","ports":[18001]}]}'
e2e_tcp_echo e1 18000
e2e_tcp_echo e2 18001
e2e_start e1 w1 "$PEERS"
e2e_start e2 w2 "$PEERS"
if ! e2e_wait_all 15 e1 e2; then
	notok "link up" "not within 15 s"
	e2e_finish
	exit 1
fi
ok "link up"

# restart_and_time HOST OTHER HOST_ID OTHER_ID: SIGKILL HOST, start it
# again, and wait until both ends are up on a new epoch; the ms from the
# start in E2E_MS (8000: not within 8 s). Not inside $(...): it spawns.
restart_and_time() {
	local host=$1 other=$2 hpeer=$3 opeer=$4 t0 ep0
	ep0=$(e2e_field "$other" "$hpeer" 8)
	e2e_kill9 "$host"
	t0=$(now_ms)
	e2e_restart "$host"
	E2E_MS=8000
	while (($(now_ms) - t0 < 8000)); do
		if e2e_up "$host" "$opeer" && e2e_up "$other" "$hpeer" &&
			[[ $(e2e_field "$other" "$hpeer" 8) != "$ep0" ]]; then
			E2E_MS=$(($(now_ms) - t0))
			return 0
		fi
		sleep 0.05
	done
}

for role in "e2 e1 w2 w1 controlled" "e1 e2 w1 w2 controlling"; do
	set -- $role
	restart_and_time "$1" "$2" "$3" "$4"
	if ((E2E_MS <= 5000)); then
		ok "kill -9 and restart of $3 ($5 side): back in $E2E_MS ms (limit 5000)"
	else
		notok "kill -9 and restart of $3 ($5 side)" "not back within 5 s"
	fi
done
e2e_expect "traffic after the restarts" "tcp e2 x 127.0.0.1:18000" e2e_tcp e1 18001 x

# Dead without a word: declared dead within 15 s, and a new epoch begins.
ep0=$(e2e_field e1 w2 8)
e2e_kill9 e2
t0=$(now_ms)
while e2e_up e1 w2 && (($(now_ms) - t0 < 20000)); do sleep 0.2; done
ms=$(($(now_ms) - t0))
if ((ms <= 16000)); then
	ok "silent death of w2 declared within $ms ms (limit 15000 + 1000 polling)"
else
	notok "silent death declared" "still up after $ms ms"
fi
grep -o 'link down: .*' "${E2E_LOG[e1]}" | tail -1 | sed 's/^/# /'
sleep 0.5
check "a new epoch started after the death ($(e2e_field e1 w2 8) > $ep0)" \
	test "$(e2e_field e1 w2 8)" -gt "$ep0"
t0=$(now_ms)
e2e_restart e2
if e2e_wait_up 5 e2 w1 >/dev/null && e2e_wait_up 2 e1 w2 >/dev/null; then
	ok "w2 back $(($(now_ms) - t0)) ms after its restart (limit 5000)"
else
	notok "w2 back after the death" "not within 5 s"
fi

# Both at the same moment, 20 times.
conv=0 worst=0 sum=0
for i in $(seq 1 20); do
	kill -9 "${E2E_PID[e1]}" "${E2E_PID[e2]}" 2>/dev/null || true
	wait "${E2E_PID[e1]}" "${E2E_PID[e2]}" 2>/dev/null || true
	t0=$(now_ms)
	e2e_restart e1
	e2e_restart e2
	if e2e_wait_all 10 e1 e2; then
		ms=$(($(now_ms) - t0))
		conv=$((conv + 1)) sum=$((sum + ms))
		((ms > worst)) && worst=$ms
	else
		echo "# round $i: not converged in 10 s"
		e2e_status e1 | sed 's/^/#   /'
		e2e_status e2 | sed 's/^/#   /'
	fi
done
check "both restarted together 20 times: converged $conv/20 (mean $((sum / (conv ? conv : 1))) ms, worst $worst ms)" \
	test "$conv" = 20
e2e_expect "traffic after the 20 double restarts" "tcp e2 y 127.0.0.1:18000" e2e_tcp e1 18001 y
e2e_finish
