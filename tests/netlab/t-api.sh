#!/usr/bin/env bash
# t-api.sh: netlab refuses what would break its rules, before creating
# anything: addresses outside 198.18.0.0/15, subnets that overlap the
# public segment, unknown NAT types, taken names, hosts outside their NAT's
# subnet, impairments on links it did not make. Owns nothing beyond its
# own netlab run; no packet is sent.
set -euo pipefail
source "$(dirname "$0")/netlab.sh"
netlab_init

T=api
fails=0
netlab_public_host a 198.18.0.71
netlab_nat n 198.18.0.170 eim 198.19.7.0/24

# refused NAME CMD...: CMD must fail and leave no new namespace.
refused() {
	local name=$1 before after
	shift
	before=$(ip netns list | grep -c "^$NETLAB_PREFIX" || true)
	if "$@" 2>"$NETLAB_DIR/err"; then
		netlab_fail "$T/$name" "accepted: $*" || fails=$((fails + 1))
		return 0
	fi
	after=$(ip netns list | grep -c "^$NETLAB_PREFIX" || true)
	if ((after != before)); then
		netlab_fail "$T/$name" "refused, but left a namespace behind: $*" || fails=$((fails + 1))
	else
		echo "PASS $T/$name ($(head -n1 "$NETLAB_DIR/err"))"
	fi
}

refused ip-outside-range netlab_public_host b 203.0.113.5
refused ip-loopback netlab_public_host b 127.0.0.2
refused ip-malformed netlab_public_host b 198.18.0.300
refused ip-not-public-segment netlab_public_host b 198.18.9.1
refused name-taken netlab_public_host a 198.18.0.72
refused name-bad netlab_public_host "B_1" 198.18.0.72
refused nat-type netlab_nat m 198.18.0.171 cone 198.19.8.0/24
refused nat-overlap netlab_nat m 198.18.0.171 eim 198.18.0.0/16
refused nat-subnet-range netlab_nat m 198.18.0.171 eim 203.0.113.0/24
refused nat-subnet-hostbits netlab_nat m 198.18.0.171 eim 198.19.8.1/24
refused host-outside-subnet netlab_host_behind n h 198.19.8.10
refused host-is-gateway netlab_host_behind n h 198.19.7.1
refused host-no-nat netlab_host_behind nope h 198.19.7.10
refused loss-unknown-link netlab_loss a eth1 10
refused loss-bad-percent netlab_loss a eth0 120
refused rate-bad netlab_rate a eth0 fast
refused delay-bad netlab_delay a eth0 -5
refused direction-bad netlab_loss a eth0 10 sideways
((fails == 0)) || exit 1
