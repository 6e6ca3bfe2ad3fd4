#!/usr/bin/env bash
# TURN REST credentials (CONTRACT sections 2 and 3): the relay accepts a
# credential computed here from the secret file (turn key by HKDF), and
# refuses a wrong password and an expired username.
# shellcheck source=tests/turn/lib.sh
source "$(dirname "$0")/lib.sh"
turn_init 17800

coord_start --relay-allow 127.0.0.1/32
peer_start
key=$(turn_key_hex)
[[ ${#key} == 64 ]] || fail "cannot derive the turn key with openssl kdf"

TURN_USER="$(($(date +%s) + 600)):w9"
TURN_PASS=$(rest_password "$TURN_USER" "$key")
expect_roundtrip "credential computed from the secret file" -p "$STUN" -e 127.0.0.1

TURN_PASS=$(rest_password "$TURN_USER" "${key%?}0")
[[ $TURN_PASS != $(rest_password "$TURN_USER" "$key") ]] || TURN_PASS=$(rest_password "$TURN_USER" "${key%?}1")
expect_refused "wrong password" "Cannot complete Allocation" -p "$STUN" -e 127.0.0.1

TURN_USER="$(($(date +%s) - 60)):w9"
TURN_PASS=$(rest_password "$TURN_USER" "$key")
expect_refused "expired username" "Cannot complete Allocation" -p "$STUN" -e 127.0.0.1

turn_creds w1
expect_roundtrip "credential from GET /v1/turn" -p "$STUN" -e 127.0.0.1

coord_stop
ok "coordinator stopped cleanly"
