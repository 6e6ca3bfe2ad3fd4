#!/usr/bin/env bash
# t-loss.sh: netlab_loss drops about the configured share of packets.
# Owns nothing beyond its own netlab run. 300 pings at 200/s per case;
# tolerances are wide (binomial spread plus a margin): 10 % out of a
# host loses 2..25 % of pings, 10 % both ways 8..35 % (1 - 0.9^2 = 19 %).
set -euo pipefail
source "$(dirname "$0")/netlab.sh"
netlab_require ping awk
netlab_init

T=loss
fails=0
netlab_public_host a 198.18.0.31
netlab_public_host b 198.18.0.32
netlab_public_host c 198.18.0.33
netlab_public_host d 198.18.0.34

# loss_pct FROM TO: per cent of 300 pings lost.
loss_pct() {
	local out
	out=$(netlab_exec "$1" ping -n -q -c 300 -i 0.005 -W 0.5 "$2" || true)
	sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' <<<"$out"
}

in_range() { awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN{exit !(v != "" && v >= lo && v <= hi)}'; }

base=$(loss_pct a 198.18.0.32)
netlab_loss a eth0 10
netlab_loss c eth0 10 both
# Both measurements at once, on separate host pairs.
loss_pct c 198.18.0.34 >"$NETLAB_DIR/both" &
both_pid=$!
out=$(loss_pct a 198.18.0.32)
wait $both_pid
both=$(<"$NETLAB_DIR/both")
echo "  loss: none ${base}%, 10% out ${out}%, 10% both ways ${both}%"

if in_range "$base" 0 0; then netlab_pass "$T/baseline"; else netlab_fail "$T/baseline" "lost ${base}% without impairment" || fails=$((fails + 1)); fi
if in_range "$out" 2 25; then netlab_pass "$T/out-10"; else netlab_fail "$T/out-10" "lost ${out}%, want 2..25%" || fails=$((fails + 1)); fi
if in_range "$both" 8 35; then netlab_pass "$T/both-10"; else netlab_fail "$T/both-10" "lost ${both}%, want 8..35%" || fails=$((fails + 1)); fi
((fails == 0)) || exit 1
