#!/usr/bin/env bash
# What the embedded coturn must not do to its host: no files outside the
# private temp dir (which is gone once the relay answers), no pid or log
# files in coturn's default places, no daemonizing, no privilege change,
# no listener besides the configured ports (no telnet CLI on 5766, no
# RFC 5780 alternate ports, no web admin). TLS 1.2 is served; TLS 1.0 is
# answered with an alert, not left hanging. SIGTERM still ends the
# process (coturn must not take the coordinator's signals).
# shellcheck source=tests/turn/lib.sh
source "$(dirname "$0")/lib.sh"
turn_init 17880

touch "$T/marker"
sleep 1 # -newer compares whole seconds on some filesystems
coord_start
pid=$COORD_PID

left=$(find "$T/tmp" -mindepth 1 2>/dev/null || true)
[[ -z $left ]] || fail "the relay's temp dir is still there once ready: $left"
ok "the private temp dir (generated key, pid file) is removed once the relay answers"

newer=$(find /var/run/turnserver.pid /run/turnserver.pid /var/spool/turnserver.pid \
	/var/turnserver.pid /var/tmp/turnserver.pid /tmp/turnserver.pid ./turnserver.pid \
	/var/log/turnserver /var/log /var/tmp /tmp . -maxdepth 1 \
	\( -name 'turn*.pid' -o -name 'turn_*.log' -o -name 'turn.log' -o -name 'turnserver' \) \
	-newer "$T/marker" 2>/dev/null || true)
[[ -z $newer ]] || fail "coturn wrote outside its temp dir: $newer"
ok "no pid or log file in coturn's default places"

ppid=$(awk '{ print $4 }' "/proc/$pid/stat")
[[ $ppid == "$$" ]] || fail "the coordinator's parent is $ppid, not this test ($$): daemonized?"
uid=$(awk '/^Uid:/ { print $2 "," $3 }' "/proc/$pid/status")
[[ $uid == "$(id -u),$(id -u)" ]] || fail "the coordinator's uids changed to $uid"
ok "still our child, same uid (no daemon, no privilege drop)"

ports=$(ss -H -lntup 2>/dev/null | grep "pid=$pid," | awk '{ n = split($5, a, ":"); print $1 "/" a[n] }' | sort -u)
want=$(printf '%s\n' "tcp/$HTTP" "tcp/$STUN" "tcp/$TLS" "udp/$STUN" | sort -u)
[[ $ports == "$want" ]] || fail "listeners are '${ports//$'\n'/ }', want '${want//$'\n'/ }'"
ok "listeners: ${ports//$'\n'/ }"

proto=$(timeout 10 openssl s_client -connect "127.0.0.1:$TLS" </dev/null 2>/dev/null |
	awk '/^ *Protocol *:/ { print $3; exit }' || true)
[[ $proto == TLSv1.2 ]] || fail "TLS port negotiated '${proto:-nothing}'"
ok "TURN over TLS negotiates TLSv1.2"
rc=0
timeout 5 openssl s_client -tls1 -cipher 'DEFAULT:@SECLEVEL=0' -connect "127.0.0.1:$TLS" \
	</dev/null >"$T/tls1.out" 2>&1 || rc=$?
[[ $rc != 0 && $rc != 124 ]] || fail "a TLS 1.0 handshake got rc $rc (124: left hanging)"
ok "TLS 1.0 is refused at once"

coord_stop
ok "SIGTERM ends the coordinator (exit 0)"
left=$(find "$T/tmp" -mindepth 1 2>/dev/null || true)
[[ -z $left ]] || fail "files left in the temp dir after exit: $left"
