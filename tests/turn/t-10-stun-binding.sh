#!/usr/bin/env bash
# STUN Binding over UDP against the coordinator's embedded relay
# (turnutils_stunclient): the answer carries our own address as the
# reflexive one, and GET /v1/ready says the relay is up.
# shellcheck source=tests/turn/lib.sh
source "$(dirname "$0")/lib.sh"
turn_init 17600

coord_start
ok "GET /v1/ready is 200 once the relay answers"

out=$(timeout 10 turnutils_stunclient -p "$STUN" 127.0.0.1 2>&1) ||
	fail "turnutils_stunclient failed: $out"
grep -q 'UDP reflexive addr: 127\.0\.0\.1:[0-9]' <<<"$out" ||
	fail "no reflexive address in: $out"
ok "Binding over UDP: $(grep -o 'reflexive addr: [0-9.:]*' <<<"$out" | head -n 1)"

coord_stop
ok "coordinator stopped cleanly"
