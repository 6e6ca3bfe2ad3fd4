#!/usr/bin/env bash
# TURN over UDP: an allocation with data relayed to a UDP echo peer and
# back, through channels (ChannelBind) and through Send indications
# (CreatePermission). The peer is on loopback, so the coordinator runs
# with --relay-allow 127.0.0.1/32; credentials come from GET /v1/turn.
# shellcheck source=tests/turn/lib.sh
source "$(dirname "$0")/lib.sh"
turn_init 17640

coord_start --relay-allow 127.0.0.1/32
peer_start
turn_creds w1

expect_roundtrip "UDP, channel data" -p "$STUN" -e 127.0.0.1
expect_roundtrip "UDP, send indications" -p "$STUN" -s -e 127.0.0.1

coord_stop
ok "coordinator stopped cleanly"
