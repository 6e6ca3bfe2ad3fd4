#!/usr/bin/env bash
# TURN over TLS: first with the self-signed pair the relay makes at start,
# then with an operator's --tls-cert/--tls-key (an RSA pair made here);
# data relayed to a loopback echo peer and back each time.
# shellcheck source=tests/turn/lib.sh
source "$(dirname "$0")/lib.sh"
turn_init 17720

# tls_subject: the certificate subject the TLS port presents.
tls_subject() {
	timeout 10 openssl s_client -connect "127.0.0.1:$TLS" </dev/null 2>/dev/null |
		openssl x509 -noout -subject 2>/dev/null || true
}

coord_start --relay-allow 127.0.0.1/32
peer_start
turn_creds w1
subject=$(tls_subject)
[[ $subject == *mesh-relay* ]] || fail "generated certificate not offered (subject: '$subject')"
ok "TLS port offers the generated certificate ($subject)"
expect_roundtrip "TLS (generated certificate)" -t -S -p "$TLS" -e 127.0.0.1
coord_stop

(umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=turn-test.invalid \
	-keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1) || fail "openssl req failed"
coord_start --relay-allow 127.0.0.1/32 --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
turn_creds w1
subject=$(tls_subject)
[[ $subject == *turn-test.invalid* ]] || fail "operator certificate not offered (subject: '$subject')"
ok "TLS port offers the operator's certificate"
expect_roundtrip "TLS (operator certificate)" -t -S -p "$TLS" -e 127.0.0.1

coord_stop
ok "coordinator stopped cleanly"
