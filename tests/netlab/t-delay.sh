#!/usr/bin/env bash
# t-delay.sh: netlab_delay (netlab-delayd) adds its delay each way, so the
# ping round trip grows by 2x the configured delay; delays on two links
# add up; it works on a host's link behind a NAT; a full queue drops and
# counts. Owns nothing beyond its own netlab run.
set -euo pipefail
source "$(dirname "$0")/netlab.sh"
netlab_require ping awk "$NETLAB_DELAYD"
netlab_init

T=delay
fails=0
netlab_public_host a 198.18.0.51
netlab_public_host b 198.18.0.52
netlab_public_host c 198.18.0.53
netlab_public_host d 198.18.0.54
netlab_nat n 198.18.0.150 eim 198.18.5.0/24
netlab_host_behind n h 198.18.5.10

# rtt FROM TO [COUNT] [INTERVAL]: average ping RTT in ms (or empty).
rtt() {
	local out
	out=$(netlab_exec "$1" ping -n -q -c "${3:-10}" -i "${4:-0.05}" -W 2 "$2" || true)
	sed -n 's|^rtt [^=]*= [0-9.]*/\([0-9.]*\)/.*|\1|p' <<<"$out"
}
# burst_loss FROM TO N: per cent lost of N pings sent at once (preload).
burst_loss() {
	local out
	out=$(netlab_exec "$1" ping -n -q -c "$3" -l "$3" -W 1 "$2" || true)
	sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' <<<"$out"
}
in_range() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN{exit !(v != "" && v >= lo && v <= hi)}'; }
verdict() { # verdict NAME VALUE LO HI MESSAGE
	if in_range "$2" "$3" "$4"; then netlab_pass "$T/$1"; else
		netlab_fail "$T/$1" "$5: $2, want $3..$4" || fails=$((fails + 1))
	fi
}

base=$(rtt a 198.18.0.52)
netlab_delay a eth0 50
d50=$(rtt a 198.18.0.52)
netlab_delay b eth0 25
d75=$(rtt a 198.18.0.52)
netlab_delay h eth0 30
dnat=$(rtt h 198.18.0.54)
echo "  rtt ms: none $base, 50 ms on a $d50, plus 25 ms on b $d75, 30 ms behind NAT $dnat"
verdict baseline "$base" 0 5 "RTT without delay"
verdict 50ms "$d50" 99 115 "RTT with 50 ms each way"
verdict 50+25ms "$d75" 149 170 "RTT with 50 + 25 ms each way"
verdict behind-nat-30ms "$dnat" 59 75 "RTT with 30 ms each way behind a NAT"

# 40 pings sent at once into a queue of 10 frames: most must be dropped,
# and the counters must show it.
netlab_delay c eth0 50 10
rtt c 198.18.0.54 1 >/dev/null # resolve ARP first: no burst held back by it
lost=$(burst_loss c 198.18.0.54 40)
stats=$(netlab_delay_stats c eth0)
drops=$(sed -n 's/.*a2b_drop=\([0-9]*\).*/\1/p' <<<"$stats")
echo "  queue 10: ping loss ${lost}%, delayd: $stats"
verdict queue-overflow-loss "$lost" 10 95 "ping loss through a full queue"
verdict queue-overflow-counted "$drops" 1 1000000 "dropped frames counted"
((fails == 0)) || exit 1
