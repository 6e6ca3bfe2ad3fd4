#!/usr/bin/env bash
# t-rate.sh: netlab_rate (tbf) limits throughput. Owns nothing beyond its
# own netlab run. iperf3 TCP for 2 s: unshaped must exceed 100 Mbit/s,
# 10mbit out of the sender must measure 6..11 Mbit/s, and 10mbit "in" on
# the receiver (tbf on its switch port) the same.
set -euo pipefail
source "$(dirname "$0")/netlab.sh"
netlab_require iperf3 awk
netlab_init

T=rate
fails=0
netlab_public_host a 198.18.0.41
netlab_public_host b 198.18.0.42
netlab_public_host c 198.18.0.43
netlab_spawn b iperf3 -s -B 198.18.0.42 -p 5201
netlab_wait_listen b tcp 5201

# mbit FROM: receiver-side Mbit/s of a 2 s iperf3 run from FROM to b.
mbit() {
	local out
	out=$(NETLAB_TIMEOUT=15 netlab_exec "$1" iperf3 -c 198.18.0.42 -p 5201 -t 2 -f m --connect-timeout 3000 || true)
	awk '/receiver$/ { for (i = 1; i < NF; i++) if ($(i+1) == "Mbits/sec") v = $i } END { print v }' <<<"$out"
}
in_range() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN{exit !(v != "" && v >= lo && v <= hi)}'; }

free=$(mbit a)
netlab_rate a eth0 10mbit
shaped=$(mbit a)
netlab_rate b eth0 10mbit in
shaped_in=$(mbit c)
echo "  rate: unshaped ${free} Mbit/s, 10mbit out ${shaped} Mbit/s, 10mbit in ${shaped_in} Mbit/s"

if in_range "$free" 100 1000000; then netlab_pass "$T/unshaped"; else netlab_fail "$T/unshaped" "only ${free} Mbit/s" || fails=$((fails + 1)); fi
if in_range "$shaped" 6 11; then netlab_pass "$T/out-10mbit"; else netlab_fail "$T/out-10mbit" "${shaped} Mbit/s, want 6..11" || fails=$((fails + 1)); fi
if in_range "$shaped_in" 6 11; then netlab_pass "$T/in-10mbit"; else netlab_fail "$T/in-10mbit" "${shaped_in} Mbit/s, want 6..11" || fails=$((fails + 1)); fi
((fails == 0)) || exit 1
