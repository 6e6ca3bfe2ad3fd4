#!/usr/bin/env bash
# bench/mesh-bench.sh: the mesh-client benchmark (issue 3, "Benchmark").
# A program that prints numbers; it never fails on a figure.
#
# It builds a netlab network (tests/netlab/netlab.sh, through the e2e
# helpers in tests/client/e2e/lib.sh): bin/coordinator on public host
# "coord" (198.18.0.10) and two mesh-clients, w1 in host "a" and w2 in host
# "b". By default both sit behind endpoint-independent NATs (the issue's
# direct-path acceptance case, t-10-direct), so the link is direct (srflx).
# Then, side by side in one run:
#
#   1. time from starting both clients to the link being up on both sides,
#      BENCH_LINKUP_RUNS times (the last run's link is kept for 2 and 3);
#   2. UDP round-trip time, one probe at a time (bin/udp-rtt), from a to an
#      echo on b: through the mesh (127.0.0.1:18100 -> 127.0.0.1:18101,
#      identity-port plan) and without it (a -> b's address directly);
#   3. TCP throughput, iperf3 from a to a server on b: through the mesh
#      (a connects to 127.0.0.1:18001, b's port) and without it.
#
# "Without the mesh" takes the same hops: behind the NATs, a connects to b's
# NAT's public address 198.18.0.102, which forwards the raw ports (DNAT,
# added inside n-b's namespace only) to b, so the packets cross a's NAT
# (MASQUERADE), the public bridge and b's NAT just as the mesh's srflx path
# does. With BENCH_TOPO=public both hosts are on the public segment
# (198.18.0.21/.22), the path is "host", and the raw figures go straight to
# b's address.
#
# Prints a table with the targets next to the figures (TCP >= 1 Gbit/s and
# its ratio to raw, added RTT < 0.3 ms, link up < 1 s) and a last line
#   RESULT mesh_gbps=... raw_gbps=... ratio=... rtt_mesh_p50_ms=... ...
# Exits 0 when everything was measured, 1 when something could not be
# (no link, a tool failed). Needs root. Only 198.18.0.0/15 and loopback
# addresses inside the run's namespaces; netlab's traps remove every
# namespace and process on exit, Ctrl-C or SIGTERM.
#
# Environment (all optional):
#   NETLAB_BIN=bin           where coordinator, mesh-client, meshreq, udp-rtt are
#   BENCH_TOPO=eim           eim: both behind eim NATs; public: both public
#   BENCH_DURATION=10        seconds per iperf3 run
#   BENCH_PROBES=1000        UDP probes per path (after 20 warm-up probes)
#   BENCH_PROBE_SIZE=64      UDP probe payload in bytes
#   BENCH_LINKUP_RUNS=5      link-up measurements (clients started K times)
#   BENCH_IPERF_ARGS=        extra iperf3 client arguments (e.g. "-P 2")
#   BENCH_PERF=0             1: perf record both mesh-clients during the mesh
#                            iperf3 run and print the top symbols
#   BENCH_LOG_LEVEL=info     the clients' --log-level
set -euo pipefail
cd "$(dirname "$0")/.."
export NETLAB_BIN=${NETLAB_BIN:-${BIN:-bin}}

TOPO=${BENCH_TOPO:-eim}
DURATION=${BENCH_DURATION:-10}
PROBES=${BENCH_PROBES:-1000}
PROBE_SIZE=${BENCH_PROBE_SIZE:-64}
RUNS=${BENCH_LINKUP_RUNS:-5}
IPERF_ARGS=${BENCH_IPERF_ARGS:-}
PERF=${BENCH_PERF:-0}
E2E_LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
UDP_RTT=$NETLAB_BIN/udp-rtt

TARGET_GBPS=1
TARGET_ADDED_RTT_MS=0.3
TARGET_LINKUP_MS=1000

case $TOPO in eim | public) ;; *)
	echo "mesh-bench: BENCH_TOPO must be eim or public, not '$TOPO'" >&2
	exit 2
	;;
esac
for v in DURATION PROBES PROBE_SIZE RUNS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "mesh-bench: BENCH_$v must be a positive integer" >&2; exit 2; }
done

# shellcheck source=tests/client/e2e/lib.sh
source tests/client/e2e/lib.sh
netlab_require iperf3 jq "$UDP_RTT"
((PERF == 0)) || netlab_require perf

say() { printf 'mesh-bench: %s\n' "$*"; }
die() {
	printf 'mesh-bench: %s\n' "$*" >&2
	netlab_dump_logs >&2 || true
	exit 1
}

# Peer table: slot 0 = TCP (iperf3), slot 1 = UDP (echo).
PEERS='{"peers":[{"id":"w1","ports":[18000,18100]},{"id":"w2","ports":[18001,18101]}]}'
RAW_TCP_PORT=5201
RAW_UDP_PORT=5301

# ----------------------------------------------------------------- network
e2e_init
if [[ $TOPO == eim ]]; then
	netlab_nat n-a 198.18.0.101 eim 198.18.1.0/24
	netlab_host_behind n-a a 198.18.1.10
	netlab_nat n-b 198.18.0.102 eim 198.18.2.0/24
	netlab_host_behind n-b b 198.18.2.10
	B_ADDR=198.18.2.10
	RAW_TARGET=198.18.0.102
	# The raw path's port forward on b's NAT (its namespace only).
	for proto_port in tcp:$RAW_TCP_PORT udp:$RAW_UDP_PORT; do
		ip netns exec "$(netlab_ns n-b)" iptables -w 5 -t nat -A PREROUTING -i eth0 \
			-p "${proto_port%%:*}" --dport "${proto_port#*:}" -j DNAT --to-destination "$B_ADDR"
	done
	TOPO_DESC="a (198.18.1.10) behind eim NAT 198.18.0.101 <-> b (198.18.2.10) behind eim NAT 198.18.0.102; raw path: a -> 198.18.0.102 (DNAT to b)"
else
	netlab_public_host a 198.18.0.21
	netlab_public_host b 198.18.0.22
	B_ADDR=198.18.0.22
	RAW_TARGET=198.18.0.22
	TOPO_DESC="a (198.18.0.21) and b (198.18.0.22) on the public segment; raw path: a -> 198.18.0.22"
fi
e2e_coordinator

# Servers on b: one pair for the mesh (b's identity ports on loopback), one
# for the raw path (b's own address).
netlab_spawn b iperf3 -s -B 127.0.0.1 -p 18001
netlab_spawn b iperf3 -s -B "$B_ADDR" -p "$RAW_TCP_PORT"
netlab_spawn b "$UDP_RTT" echo --bind 127.0.0.1:18101
netlab_spawn b "$UDP_RTT" echo --bind "$B_ADDR:$RAW_UDP_PORT"
if ! { netlab_wait_listen b tcp 18001 5 && netlab_wait_listen b tcp "$RAW_TCP_PORT" 5 &&
	netlab_wait_listen b udp 18101 5 && netlab_wait_listen b udp "$RAW_UDP_PORT" 5; }; then
	die "the servers on b did not start"
fi

say "$TOPO_DESC"
say "coordinator $E2E_COORD_URL; $("$E2E_CLIENT" --version 2>/dev/null | head -1 || echo '?'); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------- 1. link up
# The "link up" log line's timestamp (ms, CLOCK_REALTIME) minus the moment
# just before the first client was spawned; the link counts as up when both
# sides have logged it. Logs are polled every 10 ms only to know when to
# read them.
log_ms() { # LOG: the first "link up" line's time in unix ms
	local ts
	ts=$(grep -m1 ' link up: ' "$1" | cut -d' ' -f1) || return 1
	[[ -n $ts ]] && date -u -d "$ts" +%s%3N
}
stop_clients() { # SIGTERM both at once, then wait for both
	local h
	for h in a b; do kill -TERM "${E2E_PID[$h]}" 2>/dev/null || true; done
	for h in a b; do wait "${E2E_PID[$h]}" 2>/dev/null || true; done
}
linkup_ms=()
for ((k = 1; k <= RUNS; k++)); do
	t0=$(now_ms)
	e2e_start a w1 "$PEERS" --log-level "$E2E_LOG_LEVEL"
	e2e_start b w2 "$PEERS" --log-level "$E2E_LOG_LEVEL"
	end=$((t0 + 15000))
	until grep -q ' link up: ' "${E2E_LOG[a]}" && grep -q ' link up: ' "${E2E_LOG[b]}"; do
		(($(now_ms) < end)) || die "run $k: the link was not up within 15 s"
		sleep 0.01
	done
	ta=$(log_ms "${E2E_LOG[a]}") tb=$(log_ms "${E2E_LOG[b]}")
	ms=$(((ta > tb ? ta : tb) - t0))
	linkup_ms+=("$ms")
	path=$(grep -m1 -o 'link up: [a-z-]* path, rtt [0-9]* ms' "${E2E_LOG[a]}" | sed 's/link up: //')
	say "link up run $k: $ms ms (a $((ta - t0)) ms, b $((tb - t0)) ms; $path)"
	((k == RUNS)) || stop_clients
done
linkup_median=$(printf '%s\n' "${linkup_ms[@]}" | sort -n |
	awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')

# The link the measurements go through.
e2e_wait_all 5 a b || die "the link is not up on both sides"
path_a=$(e2e_field a w2 3) path_b=$(e2e_field b w1 3)
case $path_a in host | srflx | prflx) ;; *)
	say "WARNING: the selected path is '$path_a', not direct: the figures below are not the direct path's"
	;;
esac
say "selected path: a->w2 $path_a, b->w1 $path_b"
e2e_status a | sed 's/^/    /'

# ---------------------------------------------------------- 2. UDP RTT
rtt_field() { sed -n "s/.* $2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
run_rtt() { # LABEL ARGS...: prints udp-rtt's RESULT line
	local label=$1 out
	shift
	out=$(NETLAB_TIMEOUT=$((PROBES / 50 + 60)) netlab_exec a "$UDP_RTT" ping --count "$PROBES" \
		--size "$PROBE_SIZE" --timeout-ms 1000 "$@" | grep '^RESULT') || die "udp-rtt ($label) failed: $out"
	say "udp rtt $label: ${out#RESULT }" >&2
	echo "$out"
}
rtt_raw=$(run_rtt raw --to "$RAW_TARGET:$RAW_UDP_PORT")
rtt_mesh=$(run_rtt mesh --to 127.0.0.1:18101 --bind 127.0.0.1:18100)

# ------------------------------------------------------- 3. TCP throughput
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Whole machine busy share (all cores, 100 = every core busy), from /proc/stat.
sys_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
# UDP receive-buffer overflows in a host's namespace (QUIC packets dropped
# before the mesh-client read them).
udp_snmp() { # HOST FIELD
	ip netns exec "$(netlab_ns "$1")" awk -v f="$2" '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c[f] }' /proc/net/snmp
}
udp_rcvbuf_errs() { udp_snmp "$1" RcvbufErrors; }
run_iperf() { # LABEL HOST PORT: iperf3's JSON in $NETLAB_DIR/iperf-LABEL.json
	local label=$1 host=$2 port=$3
	# shellcheck disable=SC2086
	NETLAB_TIMEOUT=$((DURATION + 40)) netlab_exec a iperf3 -c "$host" -p "$port" \
		-t "$DURATION" -J $IPERF_ARGS >"$NETLAB_DIR/iperf-$label.json" ||
		die "iperf3 ($label) failed: $(jq -r '.error // empty' "$NETLAB_DIR/iperf-$label.json" 2>/dev/null)"
}
iperf_gbps() { jq -r '.end.sum_received.bits_per_second / 1e9' "$NETLAB_DIR/iperf-$1.json"; }
iperf_retr() { jq -r '.end.sum_sent.retransmits // 0' "$NETLAB_DIR/iperf-$1.json"; }
iperf_cpu() { jq -r '"iperf3 cpu sender \(.end.cpu_utilization_percent.host_total | floor)%, receiver \(.end.cpu_utilization_percent.remote_total | floor)%"' "$NETLAB_DIR/iperf-$1.json"; }

run_iperf raw "$RAW_TARGET" "$RAW_TCP_PORT"
raw_gbps=$(iperf_gbps raw)
say "tcp raw:  $(printf '%.2f' "$raw_gbps") Gbit/s, $(iperf_retr raw) retransmits, $(iperf_cpu raw)"

pa=${E2E_PID[a]} pb=${E2E_PID[b]}
ca0=$(cpu_ticks "$pa") cb0=$(cpu_ticks "$pb") w0=$(now_ms)
read -r sb0 si0 < <(sys_ticks)
ua0=$(udp_rcvbuf_errs a) ub0=$(udp_rcvbuf_errs b) da0=$(udp_snmp a OutDatagrams)
if ((PERF)); then
	netlab_spawn a perf record -F 499 -g -o "$NETLAB_DIR/perf.data" -p "$pa,$pb" -- sleep "$DURATION"
	perf_pid=$NETLAB_LAST_PID
fi
run_iperf mesh 127.0.0.1 18001
ca1=$(cpu_ticks "$pa") cb1=$(cpu_ticks "$pb") w1=$(now_ms)
read -r sb1 si1 < <(sys_ticks)
ua1=$(udp_rcvbuf_errs a) ub1=$(udp_rcvbuf_errs b) da1=$(udp_snmp a OutDatagrams)
mesh_bytes=$(jq -r '.end.sum_received.bytes' "$NETLAB_DIR/iperf-mesh.json")
dgrams=$((da1 - da0))
sys_busy=$(((sb1 - sb0) * 100 / (sb1 - sb0 + si1 - si0 + 1)))
rcvbuf_drops=$((ua1 - ua0 + ub1 - ub0))
mesh_gbps=$(iperf_gbps mesh)
cpu_a=$(((ca1 - ca0) * 100000 / CLK_TCK / (w1 - w0)))
cpu_b=$(((cb1 - cb0) * 100000 / CLK_TCK / (w1 - w0)))
say "tcp mesh: $(printf '%.2f' "$mesh_gbps") Gbit/s, $(iperf_retr mesh) retransmits (on a's loopback leg), $(iperf_cpu mesh); mesh-client cpu a (sender) ${cpu_a}%, b (receiver) ${cpu_b}%; machine ${sys_busy}% busy; UDP receive-buffer drops a $((ua1 - ua0)), b $((ub1 - ub0))"
say "tcp mesh: a's kernel counted $dgrams UDP sends (OutDatagrams; a GSO batch counts once) ($((dgrams * 1000 / (w1 - w0)))/s, $((mesh_bytes / (dgrams + 1))) application bytes per send)"
if ((PERF)); then
	wait "$perf_pid" 2>/dev/null || true
	say "perf: top symbols of both mesh-clients during the mesh iperf3 run (self time)"
	say "  (a = pid $pa, b = pid $pb); by process and object:"
	perf report -i "$NETLAB_DIR/perf.data" --no-children -g none --percent-limit 1 --sort pid,dso --stdio 2>/dev/null |
		grep -v '^#' | grep '%' | head -12 | sed 's/^/    /' || true
	say "  by symbol:"
	perf report -i "$NETLAB_DIR/perf.data" --no-children -g none --percent-limit 0.7 --sort pid,dso,sym --stdio 2>/dev/null |
		grep -v '^#' | grep '%' | head -30 | sed 's/^/    /' || true
fi

# ------------------------------------------------------------------ summary
rtt_mesh_p50=$(rtt_field "$rtt_mesh" p50_ms) rtt_mesh_p99=$(rtt_field "$rtt_mesh" p99_ms)
rtt_raw_p50=$(rtt_field "$rtt_raw" p50_ms) rtt_raw_p99=$(rtt_field "$rtt_raw" p99_ms)
read -r ratio added verdict_tput verdict_rtt verdict_up < <(awk -v m="$mesh_gbps" -v r="$raw_gbps" \
	-v mp="$rtt_mesh_p50" -v rp="$rtt_raw_p50" -v lu="$linkup_median" \
	-v tg="$TARGET_GBPS" -v tr="$TARGET_ADDED_RTT_MS" -v tl="$TARGET_LINKUP_MS" 'BEGIN {
	a = mp - rp
	printf "%.3f %.3f %s %s %s\n", (r > 0 ? m / r : 0), a,
		(m >= tg ? "met" : "missed"), (a < tr ? "met" : "missed"), (lu < tl ? "met" : "missed") }')

echo
echo "mesh-bench summary ($TOPO, path $path_a; $(nproc) cores; iperf3 ${DURATION} s; $PROBES UDP probes of $PROBE_SIZE B; $RUNS link-ups)"
printf '  %-28s %12s %12s   %s\n' "" mesh raw target
printf '  %-28s %12.2f %12.2f   >= %s Gbit/s: %s; ratio mesh/raw %.3f\n' "TCP throughput (Gbit/s)" \
	"$mesh_gbps" "$raw_gbps" "$TARGET_GBPS" "$verdict_tput" "$ratio"
printf '  %-28s %12s %12s\n' "UDP RTT p50 (ms)" "$rtt_mesh_p50" "$rtt_raw_p50"
printf '  %-28s %12s %12s\n' "UDP RTT p99 (ms)" "$rtt_mesh_p99" "$rtt_raw_p99"
printf '  %-28s %12s %12s   < %s ms: %s\n' "added RTT, p50 (ms)" "$added" "" "$TARGET_ADDED_RTT_MS" "$verdict_rtt"
printf '  %-28s %12s %12s   < %s ms: %s (runs: %s)\n' "link up from start, median" "${linkup_median} ms" "" \
	"$TARGET_LINKUP_MS" "$verdict_up" "${linkup_ms[*]}"
printf '  %-28s a %s%%, b %s%% (of one core); machine %s%% busy; %s UDP rcvbuf drops\n' "mesh-client CPU during TCP" \
	"$cpu_a" "$cpu_b" "$sys_busy" "$rcvbuf_drops"
echo "RESULT topo=$TOPO path=$path_a mesh_gbps=$(printf '%.3f' "$mesh_gbps") raw_gbps=$(printf '%.3f' "$raw_gbps") ratio=$ratio" \
	"rtt_mesh_p50_ms=$rtt_mesh_p50 rtt_mesh_p99_ms=$rtt_mesh_p99 rtt_raw_p50_ms=$rtt_raw_p50 rtt_raw_p99_ms=$rtt_raw_p99" \
	"added_rtt_ms=$added rtt_mesh_lost=$(rtt_field "$rtt_mesh" lost) linkup_median_ms=$linkup_median" \
	"linkup_runs_ms=$(IFS=,; echo "${linkup_ms[*]}") mesh_cpu_a_pct=$cpu_a mesh_cpu_b_pct=$cpu_b machine_busy_pct=$sys_busy udp_rcvbuf_drops=$rcvbuf_drops"
