#!/usr/bin/env bash
# t-40-lossy: 20 MB through one forwarded TCP connection arrive
# byte-identical while the path drops 10% of the packets each way
# (iptables statistic) and adds 25 ms one-way delay (netlab-delayd), and a
# 64 KB UDP datagram arrives whole (it travels on a reliable stream).
source "$(dirname "$0")/lib.sh"
e2e_init
netlab_nat n-e1 198.18.0.101 eim 198.18.1.0/24
netlab_host_behind n-e1 e1 198.18.1.10
netlab_nat n-e2 198.18.0.102 eim 198.18.2.0/24
netlab_host_behind n-e2 e2 198.18.2.10
e2e_coordinator
# Impair the path between the two NATs on e1's NAT's outside link: 25 ms
# each way, and 10% of the packets dropped each way.
netlab_delay n-e1 eth0 25
netlab_loss n-e1 eth0 10 both
# The clients send one datagram per message here: with UDP GSO a batch of
# up to 44 packets crosses veth and the NAT as one, and the statistic
# rule would drop whole batches (burst loss) instead of 10% of the
# packets, which is what this test is about. The last check runs with
# GSO on: the same rule then makes burst loss.
export MESH_UDP_GSO=off

PEERS='{"peers":[{"id":"w1","ports":[18000,18100]},{"id":"w2","ports":[18001,18101]}]}'
SRC=$NETLAB_DIR/src.bin DST=$NETLAB_DIR/dst.bin
head -c 20000000 /dev/urandom >"$SRC"
netlab_spawn e2 socat -u "TCP-LISTEN:18001,bind=127.0.0.1,reuseaddr" "OPEN:$DST,creat,trunc"
RX=$NETLAB_LAST_PID
netlab_wait_listen e2 tcp 18001 5

t0=$(now_ms)
e2e_start e1 w1 "$PEERS"
e2e_start e2 w2 "$PEERS"
if e2e_wait_all 30 e1 e2; then
	ok "link up over the lossy, delayed path in $(($(now_ms) - t0)) ms ($(e2e_field e1 w2 3), rtt $(e2e_field e1 w2 4))"
else
	notok "link up" "not within 30 s"
	e2e_finish
	exit 1
fi

t0=$(now_ms)
if NETLAB_TIMEOUT=150 netlab_exec e1 socat -u "FILE:$SRC" "TCP:127.0.0.1:18001"; then
	# the receiver ends when the forwarded connection's FIN arrives
	end=$((SECONDS + 60))
	while netlab_alive "$RX" && ((SECONDS < end)); do sleep 0.1; done
	ms=$(($(now_ms) - t0))
	if cmp -s "$SRC" "$DST"; then
		ok "20 MB byte-identical in $ms ms ($((20000000 * 8 / (ms > 0 ? ms : 1) / 1000)) Mbit/s) with 10% loss each way and 25 ms delay"
	else
		notok "20 MB byte-identical" "got $(stat -c %s "$DST" 2>/dev/null || echo 0) bytes, differing"
	fi
else
	notok "20 MB sent" "the sender failed after $(($(now_ms) - t0)) ms"
fi
echo "# delay element: $(netlab_delay_stats n-e1 eth0 2>/dev/null | tr '\n' ' ')"

# A datagram too large for one QUIC DATAGRAM frame arrives whole.
e2e_udp_echo e2 18101
big=$(head -c 48000 /dev/zero | tr '\0' 'x')
got=$(e2e_retry 3 bash -c "printf '%s\n' '$big' | ip netns exec $(netlab_ns e1) socat -b 65536 -t 3 -T 3 - UDP:127.0.0.1:18101,bind=127.0.0.1:18100" 2>/dev/null | head -c 20 || true)
check "48 KB UDP datagram forwarded whole over the lossy path" test "$got" = "udp e2 xxxxxxxxxxxxx"

# GSO on (the default): 10% of the batches are dropped whole, a burst of
# up to 44 packets each, on the way out of n-e1.
unset MESH_UDP_GSO
e2e_term e1
e2e_term e2
DST2=$NETLAB_DIR/dst2.bin
head -c 5000000 "$SRC" >"$SRC.5m"
netlab_spawn e2 socat -u "TCP-LISTEN:18001,bind=127.0.0.1,reuseaddr" "OPEN:$DST2,creat,trunc"
RX=$NETLAB_LAST_PID
netlab_wait_listen e2 tcp 18001 5
e2e_restart e1
e2e_restart e2
if e2e_wait_all 30 e1 e2; then
	t0=$(now_ms)
	if NETLAB_TIMEOUT=120 netlab_exec e1 socat -u "FILE:$SRC.5m" "TCP:127.0.0.1:18001"; then
		end=$((SECONDS + 60))
		while netlab_alive "$RX" && ((SECONDS < end)); do sleep 0.1; done
		if cmp -s "$SRC.5m" "$DST2"; then
			ok "5 MB byte-identical with GSO batches dropped whole (burst loss) in $(($(now_ms) - t0)) ms"
		else
			notok "5 MB byte-identical with burst loss" "got $(stat -c %s "$DST2" 2>/dev/null || echo 0) bytes, differing"
		fi
	else
		notok "5 MB sent with burst loss" "the sender failed after $(($(now_ms) - t0)) ms"
	fi
else
	notok "link up again with GSO on" "not within 30 s"
fi
e2e_finish
