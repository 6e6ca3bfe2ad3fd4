#!/usr/bin/env bash
# Allocation accounting: relay_allocations() as /metrics shows it
# (mesh_turn_allocations) rises while a TCP client holds an allocation
# and falls back when it goes; the per-credential quota refuses more
# allocations for the same credential (486) while one is held.
# turnutils_uclient needs two allocations at once (a probe, then the real
# one), so the quota is 2: the holder keeps 1, a second client needs 2.
# shellcheck source=tests/turn/lib.sh
source "$(dirname "$0")/lib.sh"
turn_init 17840

# wait_metric NAME WANT: polls /metrics for up to 10 s.
wait_metric() {
	local i v=
	for ((i = 0; i < 100; i++)); do
		v=$(metric "$1")
		[[ $v == "$2" ]] && return 0
		sleep 0.1
	done
	fail "$1 is '${v:-absent}', want $2"
}

coord_start --relay-allow 127.0.0.1/32 --turn-user-quota 2
peer_start
turn_creds w1
wait_metric mesh_turn_allocations 0
ok "no allocation at start"

# -h: the client hangs on after its last message, holding its allocation.
timeout 60 turnutils_uclient -c -h -n 1 -t -u "$TURN_USER" -w "$TURN_PASS" \
	-r "$PEER" -p "$STUN" -e 127.0.0.1 127.0.0.1 >"$T/holder.out" 2>&1 &
HOLDER=$!
PIDS+=("$HOLDER")
wait_metric mesh_turn_allocations 1
ok "one TCP client holding an allocation: mesh_turn_allocations 1"

expect_refused "over --turn-user-quota 2 for w1" "486" -t -p "$STUN" -e 127.0.0.1

turn_creds w2
expect_roundtrip "another credential is not limited by w1's quota" -t -p "$STUN" -e 127.0.0.1

stop_pid "$HOLDER" || true
forget_pid "$HOLDER"
wait_metric mesh_turn_allocations 0
ok "client gone: mesh_turn_allocations 0"

coord_stop
ok "coordinator stopped cleanly"
