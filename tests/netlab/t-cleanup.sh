#!/usr/bin/env bash
# t-cleanup.sh: a netlab run leaves nothing behind: no namespace of its
# prefix and none of its processes, after a normal exit, a failure, SIGTERM
# to its process group (as `timeout` sends) and SIGINT to the shell alone.
# Also checks isolation: no namespace has an address outside
# 198.18.0.0/15 or loopback, nor a route beyond it (route tables are read;
# no packet is sent). Each case runs this script again as a
# child (--child MODE STATE) that builds a small network and records it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

if [[ ${1:-} == --child ]]; then
	mode=$2 state=$3
	source "$HERE/netlab.sh"
	netlab_init
	netlab_public_host a 198.18.0.61
	netlab_nat n 198.18.0.160 eim 198.19.6.0/24
	netlab_host_behind n h 198.19.6.10
	netlab_spawn h sleep 600
	p1=$NETLAB_LAST_PID
	netlab_addr_server a udp 3000
	p2=$NETLAB_LAST_PID
	netlab_delay h eth0 5
	p3=$NETLAB_LAST_PID
	# A grandchild that escapes the spawned process's own group.
	# shellcheck disable=SC2016 # expanded by the inner shell
	netlab_spawn a bash -c 'setsid sleep 600 & echo $! >"$0"; wait' "$NETLAB_DIR/grandchild"
	netlab_wait_until 5 "grandchild pid" test -s "$NETLAB_DIR/grandchild"
	p4=$(<"$NETLAB_DIR/grandchild")
	{
		echo "prefix=$NETLAB_PREFIX"
		echo "shell=$$"
		echo "pids='$p1 $p2 $p3 $p4 $NETLAB_LAST_PID'"
		echo "dir=$NETLAB_DIR"
		echo "namespaces='$(ip netns list | awk -v p="$NETLAB_PREFIX" 'index($1, p) == 1 {print $1}' | tr '\n' ' ')'"
	} >"$state.tmp"
	if [[ $mode == ok ]]; then
		# Isolation, checked from inside the child's own network: only
		# 198.18.0.0/15 and loopback addresses; routes only to 198.18.0.0/15
		# subnets, and a default route only on the host behind the NAT,
		# via the NAT (which itself has none).
		for ns in $(ip netns list | awk -v p="$NETLAB_PREFIX" 'index($1, p) == 1 {print $1}'); do
			bad=$(ip -n "$ns" -4 -o addr show | awk '{print $4}' | grep -v '^127\.' | grep -v '^198\.1[89]\.' || true)
			[[ -z $bad ]] || echo "isolation=fail:$ns has address $bad" >>"$state.tmp"
			bad=$(ip -n "$ns" -4 route show | awk '$1 != "default" {print $1}' | grep -v '^198\.1[89]\.' || true)
			[[ -z $bad ]] || echo "isolation=fail:$ns routes to $bad" >>"$state.tmp"
			def=$(ip -n "$ns" -4 route show default)
			case $ns in
			*-h) [[ $def == "default via 198.19.6.1 dev eth0"* ]] ||
				echo "isolation=fail:$ns default route is '$def', want via its NAT" >>"$state.tmp" ;;
			*) [[ -z $def ]] || echo "isolation=fail:$ns has a default route: $def" >>"$state.tmp" ;;
			esac
		done
	fi
	mv "$state.tmp" "$state"
	case $mode in
	ok) exit 0 ;;
	fail) false ;;
	wait) for ((i = 0; i < 200; i++)); do sleep 0.1; done ;;
	esac
	exit 0
fi

T=cleanup
fails=0
work=$(mktemp -d "${TMPDIR:-/tmp}/netlab-cleanup.XXXXXX")
trap 'rm -rf "$work"' EXIT

# leftovers STATE: prints what the child left behind, nothing if clean.
leftovers() {
	local prefix pids dir namespaces shell p st
	# shellcheck disable=SC1090
	source "$1"
	if [[ -z ${namespaces// /} ]]; then
		echo "child recorded no namespaces"
	fi
	ip netns list | awk -v p="$prefix" 'index($1, p) == 1 {print "namespace " $1}'
	for p in $pids; do
		# A zombie is dead; this machine's pid 1 may be slow to reap it.
		st=$(awk '/^State:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
		[[ -n $st && $st != Z && $st != X ]] && echo "process $p ($(tr '\0' ' ' <"/proc/$p/cmdline"))"
	done
	[[ -e $dir ]] && echo "scratch dir $dir"
	grep '^isolation=fail' "$1" | sed 's/^isolation=fail:/isolation: /' || true
}

verdict() { # verdict NAME STATE RC WANT-RC
	local left
	if [[ ! -s $2 ]]; then
		netlab_fail_ "$1" "child did not record its network (rc=$3)"
		return
	fi
	left=$(leftovers "$2")
	if [[ -n $left ]]; then
		netlab_fail_ "$1" "left behind: $(tr '\n' ';' <<<"$left")"
	elif [[ $3 != "$4" ]]; then
		netlab_fail_ "$1" "child exit status $3, want $4"
	else
		echo "PASS $T/$1"
	fi
}
netlab_fail_() {
	echo "FAIL $T/$1: $2"
	fails=$((fails + 1))
}

# wait_state FILE PID: until the child recorded its network (max 15 s).
wait_state() {
	local i
	for ((i = 0; i < 300; i++)); do
		[[ -s $1 ]] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

rc=0
timeout -k 10 30 bash "$0" --child ok "$work/ok" >"$work/ok.log" 2>&1 || rc=$?
verdict exit-ok "$work/ok" $rc 0

rc=0
timeout -k 10 30 bash "$0" --child fail "$work/fail" >"$work/fail.log" 2>&1 || rc=$?
verdict exit-failure "$work/fail" $rc 1

# SIGTERM to the child's whole process group, as timeout(1) sends it.
# setsid makes the child shell a process group leader.
rc=0
timeout -k 10 40 setsid bash "$0" --child wait "$work/term" >"$work/term.log" 2>&1 &
tpid=$!
if wait_state "$work/term" "$tpid"; then
	shell=$(sed -n 's/^shell=//p' "$work/term")
	kill -TERM -- "-$shell" 2>/dev/null || true
fi
wait "$tpid" || rc=$?
verdict sigterm-group "$work/term" $rc 143

# SIGINT to the shell alone; it finishes its foreground sleep 0.1 first.
rc=0
timeout -k 10 40 bash "$0" --child wait "$work/int" >"$work/int.log" 2>&1 &
ipid=$!
if wait_state "$work/int" "$ipid"; then
	kill -INT "$(sed -n 's/^shell=//p' "$work/int")" 2>/dev/null || true
fi
wait "$ipid" || rc=$?
verdict sigint-shell "$work/int" $rc 130

if ((fails)); then
	for f in "$work"/*.log; do
		echo "--- ${f##*/}" >&2
		tail -n 20 "$f" >&2
	done
	exit 1
fi
