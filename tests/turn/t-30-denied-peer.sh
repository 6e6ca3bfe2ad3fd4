#!/usr/bin/env bash
# Peer deny list. Without --relay-allow, a permission or channel for a
# loopback peer is refused with 403 and no packet reaches the peer. With
# --relay-allow 127.0.0.1/32 that one address works while the rest of
# 127.0.0.0/8 stays refused by the deny list (127.0.0.2: the test only
# asks the relay for it; the relay refuses before sending anything).
# shellcheck source=tests/turn/lib.sh
source "$(dirname "$0")/lib.sh"
turn_init 17760

# A silent UDP sink on the peer port that records whatever arrives.
socat -u UDP-RECV:"$PEER",bind=127.0.0.1 OPEN:"$T/sink",creat,append &
SINK_PID=$!
PIDS+=("$SINK_PID")
sleep 0.2

coord_start
turn_creds w1
expect_refused "loopback peer, ChannelBind" "403" -p "$STUN" -e 127.0.0.1
expect_refused "loopback peer, CreatePermission" "403" -p "$STUN" -s -e 127.0.0.1
expect_refused "loopback peer over TCP" "403" -t -p "$STUN" -e 127.0.0.1
[[ ! -s $T/sink ]] || fail "the denied peer received $(stat -c %s "$T/sink") bytes"
ok "the denied peer received nothing"
coord_stop

coord_start --relay-allow 127.0.0.1/32
turn_creds w1
expect_refused "127.0.0.2 outside the allowed range" "403" -p "$STUN" -s -e 127.0.0.2
grep -q 'A peer IP 127.0.0.2 denied in the range: 127.0.0.0-127.255.255.255' "$COORD_LOG" ||
	fail "the deny list did not log the refusal of 127.0.0.2"
ok "the deny list (127.0.0.0/8) refused 127.0.0.2"
stop_pid "$SINK_PID" || true
forget_pid "$SINK_PID"
peer_start
expect_roundtrip "allowed 127.0.0.1" -p "$STUN" -e 127.0.0.1

coord_stop
ok "coordinator stopped cleanly"
