#!/usr/bin/env bash
# t-30-mesh: two peers behind the same NAT (a host path between them), and
# four peers in a full mesh across different NATs (two endpoint-independent
# ones, one without the NAT's inbound filter, one public host): all 6 links
# up, and TCP forwarded in all 12 directions with the sender's identity
# port as source.
source "$(dirname "$0")/lib.sh"
e2e_init
netlab_nat n-m 198.18.0.110 eim 198.18.10.0/24
netlab_host_behind n-m m1 198.18.10.10
netlab_host_behind n-m m2 198.18.10.11
netlab_nat n-a1 198.18.0.111 eim 198.18.11.0/24
netlab_host_behind n-a1 a1 198.18.11.10
netlab_nat n-a2 198.18.0.112 eim 198.18.12.0/24
netlab_host_behind n-a2 a2 198.18.12.10
netlab_nat n-a3 198.18.0.113 eim-open 198.18.13.0/24
netlab_host_behind n-a3 a3 198.18.13.10
netlab_public_host a4 198.18.0.20
e2e_coordinator

PM='{"peers":[{"id":"m1","ports":[18000]},{"id":"m2","ports":[18001]}]}'
P4='{"peers":[{"id":"a1","ports":[18001]},{"id":"a2","ports":[18002]},{"id":"a3","ports":[18003]},{"id":"a4","ports":[18004]}]}'
e2e_tcp_echo m2 18001
for i in 1 2 3 4; do e2e_tcp_echo "a$i" "1800$i"; done

t0=$(now_ms)
e2e_start m1 m1 "$PM"
e2e_start m2 m2 "$PM"
for i in 1 2 3 4; do e2e_start "a$i" "a$i" "$P4"; done

if e2e_wait_all 15 m1 m2; then
	ok "same NAT: link up in $(($(now_ms) - t0)) ms"
else
	notok "same NAT: link up" "not within 15 s"
fi
p=$(e2e_field m1 m2 3)
check "same NAT: host path (got $p)" test "$p" = host
e2e_expect "same NAT: tcp m1->m2" "tcp m2 hi 127.0.0.1:18000" e2e_tcp m1 18001 hi

if e2e_wait_all 20 a1 a2 a3 a4; then
	ok "full mesh: all 6 links up in $(($(now_ms) - t0)) ms"
else
	notok "full mesh: all 6 links up" "not within 20 s"
fi
up=0
for i in 1 2 3 4; do
	n=$(e2e_status "a$i" | awk 'NR > 2 && $2 == "up" { n++ } END { print n + 0 }')
	up=$((up + n))
	echo "# a$i: $(e2e_status "a$i" | awk 'NR > 2 && /^[^ ]/ { printf "%s=%s ", $1, $3 }')"
done
check "full mesh: 12 link ends up (6 links)" test "$up" = 12
bad=0
for i in 1 2 3 4; do
	for j in 1 2 3 4; do
		((i == j)) && continue
		got=$(e2e_tcp "a$i" "1800$j" "from-a$i" || true)
		[[ $got == "tcp a$j from-a$i 127.0.0.1:1800$i" ]] || { bad=$((bad + 1)); echo "# a$i->a$j: '$got'"; }
	done
done
check "full mesh: tcp in all 12 directions, source preserved ($bad bad)" test "$bad" = 0
e2e_finish
