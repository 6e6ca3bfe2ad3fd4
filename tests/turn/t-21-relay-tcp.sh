#!/usr/bin/env bash
# TURN over TCP (client to relay over TCP, relayed as UDP to a loopback
# echo peer), channels and Send indications, credentials from /v1/turn.
# shellcheck source=tests/turn/lib.sh
source "$(dirname "$0")/lib.sh"
turn_init 17680

coord_start --relay-allow 127.0.0.1/32
peer_start
turn_creds w1

expect_roundtrip "TCP, channel data" -t -p "$STUN" -e 127.0.0.1
expect_roundtrip "TCP, send indications" -t -s -p "$STUN" -e 127.0.0.1

coord_stop
ok "coordinator stopped cleanly"
