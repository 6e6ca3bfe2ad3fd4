#!/usr/bin/env bash
# t-nat.sh: each netlab NAT type behaves as named. Owns nothing beyond its
# own netlab run. Mapped addresses are read from "what's my address"
# servers on two public hosts:
#   eim, eim-open  the same mapped port towards two destinations
#   symmetric      a different mapped port per destination
#   udp-drop       no UDP either way, TCP passes
# and the CONTRACT section 6 case: after an unsolicited probe from a peer,
# eim keeps its mapping while eim-open picks a new port for that peer.
set -euo pipefail
source "$(dirname "$0")/netlab.sh"
netlab_require socat
netlab_init

T=nat
fails=0
check() { # check NAME CONDITION-DESCRIPTION CMD...
	local name=$1 what=$2
	shift 2
	if "$@"; then
		netlab_pass "$T/$name"
	else
		netlab_fail "$T/$name" "$what"
		fails=$((fails + 1))
	fi
	return 0
}

S1=198.18.0.21
S2=198.18.0.22
netlab_public_host s1 $S1
netlab_public_host s2 $S2

declare -A PUB=([eim]=198.18.0.101 [eim-open]=198.18.0.102 [symmetric]=198.18.0.103 [udp-drop]=198.18.0.104)
declare -A NET=([eim]=198.18.1 [eim-open]=198.18.2 [symmetric]=198.19.3 [udp-drop]=198.18.4)
TYPES=(eim eim-open symmetric udp-drop)
for t in "${TYPES[@]}"; do
	netlab_nat "n-$t" "${PUB[$t]}" "$t" "${NET[$t]}.0/24"
	netlab_host_behind "n-$t" "h-$t" "${NET[$t]}.10"
done

netlab_addr_server s1 udp 3000
netlab_addr_server s2 udp 3000
netlab_addr_server s1 tcp 3001

same_port() { [[ -n $1 && ${1#*:} == "${2#*:}" ]]; }
diff_port() { [[ -n $1 && -n $2 && ${1#*:} != "${2#*:}" ]]; }
is_ip() { [[ ${1%:*} == "$2" ]]; }

for t in "${TYPES[@]}"; do
	h="h-$t"
	a1=$(netlab_addr_query "$h" udp $S1 3000 40000 || true)
	a2=$(netlab_addr_query "$h" udp $S2 3000 40000 || true)
	tc=$(netlab_addr_query "$h" tcp $S1 3001 || true)
	echo "  $t: udp via s1 '$a1', udp via s2 '$a2', tcp '$tc'"
	check "$t-tcp" "TCP mapped address '$tc' is not ${PUB[$t]}" is_ip "$tc" "${PUB[$t]}"
	case $t in
	eim | eim-open)
		check "$t-udp-ip" "mapped address '$a1' is not ${PUB[$t]}" is_ip "$a1" "${PUB[$t]}"
		check "$t-udp-eim" "mapped ports differ: '$a1' vs '$a2'" same_port "$a1" "$a2"
		;;
	symmetric)
		check "$t-udp-ip" "mapped address '$a1' is not ${PUB[$t]}" is_ip "$a1" "${PUB[$t]}"
		check "$t-udp-symmetric" "mapped ports not different: '$a1' vs '$a2'" diff_port "$a1" "$a2"
		;;
	udp-drop)
		check "$t-udp-blocked" "UDP got through: '$a1' '$a2'" test -z "$a1$a2"
		;;
	esac
done

# The probed case, as ICE meets it: the host has a mapping for port 40001
# (here towards s2, as towards a STUN server); then a peer (s1:4000) probes
# that mapped port before the host sends to it; then the host sends to the
# peer. eim drops the probe and keeps the mapping; eim-open lets the probe
# create a conntrack entry that holds the tuple, so MASQUERADE gives the
# flow towards that peer a new port.
declare -A BEFORE
for t in eim eim-open; do
	BEFORE[$t]=$(netlab_addr_query "h-$t" udp $S2 3000 40001 || true)
	echo probe | netlab_exec s1 socat -u - "UDP4:${BEFORE[$t]:-${PUB[$t]}:40001},sourceport=4000"
done
netlab_addr_server s1 udp 4000
for t in eim eim-open; do
	p1=$(netlab_addr_query "h-$t" udp $S1 4000 40001 || true)
	p2=${BEFORE[$t]}
	echo "  $t: via s2 '$p2', then probe from s1, then via s1 '$p1'"
	if [[ $t == eim ]]; then
		check "$t-probe-keeps-mapping" "probe changed the mapping: '$p2' then '$p1'" \
			same_port "$p1" "$p2"
	else
		check "$t-probe-remaps" "expected a new port towards the prober: '$p2' then '$p1'" \
			diff_port "$p1" "$p2"
	fi
done

((fails == 0)) || exit 1
