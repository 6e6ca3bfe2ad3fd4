# netlab.sh: test networks in network namespaces (CONTRACT section 6).
# Sourced by tests; owns every namespace, link, iptables rule and background
# process it creates and removes all of them on exit, failure or signal.
# It never touches the host's own namespace: links are created directly
# between the namespaces it made, and every address is checked to lie in
# 198.18.0.0/15. No namespace gets a route off the machine.
# API and topology: docs/netlab.md.

# shellcheck shell=bash

if [[ -n ${_NL_SOURCED:-} ]]; then
	return 0
fi
_NL_SOURCED=1

NETLAB_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NETLAB_ROOT=$(cd "$NETLAB_HOME/../.." && pwd)
# Where the repo's binaries are (make passes $(BIN); build/san/bin under SAN=1).
NETLAB_BIN=${NETLAB_BIN:-$NETLAB_ROOT/bin}
case $NETLAB_BIN in /*) ;; *) NETLAB_BIN=$NETLAB_ROOT/$NETLAB_BIN ;; esac
NETLAB_DELAYD=${NETLAB_DELAYD:-$NETLAB_BIN/netlab-delayd}
# The "public internet" segment every public host and NAT outside joins.
NETLAB_PUBLIC_NET=${NETLAB_PUBLIC_NET:-198.18.0.0/24}
# Upper bound in seconds for one netlab_exec command.
NETLAB_TIMEOUT=${NETLAB_TIMEOUT:-60}

NETLAB_PREFIX=
NETLAB_DIR=
NETLAB_LAST_PID=
NETLAB_LAST_LOG=
declare -ga _NL_NS=()          # full namespace names, creation order
declare -ga _NL_PIDS=()        # background processes from netlab_spawn
declare -ga _NL_ON_CLEANUP=()  # extra commands, run first at cleanup
declare -gA _NL_LINK=()        # "ns/ifc" -> "switch-ns port bridge"
declare -gA _NL_DELAYD=()      # "ns/ifc" -> delayd pid
declare -gA _NL_DELAYD_LOG=()  # "ns/ifc" -> delayd log file
declare -gA _NL_NAT_NET=()     # nat name -> "netint plen gwip"
declare -gA _NL_NAT_TYPE=()    # nat name -> type
_NL_SEQ=0
_NL_CLEANED=0

_nl_err() { printf 'netlab: %s\n' "$*" >&2; }
_nl_log() { [[ ${NETLAB_VERBOSE:-0} == 1 ]] && printf 'netlab: %s\n' "$*" >&2; return 0; }

# _nl_do CMD...: run CMD, name it on failure.
_nl_do() {
	"$@" && return 0
	local rc=$?
	_nl_err "failed (rc=$rc): $*"
	return $rc
}

_nl_need_init() {
	[[ -n $NETLAB_PREFIX ]] && return 0
	_nl_err "netlab_init was not called"
	return 1
}

# ---------------------------------------------------------------- addresses

_nl_ip2int() {
	local a b c d
	IFS=. read -r a b c d <<<"$1"
	echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

_nl_int2ip() {
	local n=$1
	echo "$((n >> 24 & 255)).$((n >> 16 & 255)).$((n >> 8 & 255)).$((n & 255))"
}

# _nl_check_ip IP: a dotted quad inside 198.18.0.0/15, else error.
_nl_check_ip() {
	local ip=$1 o
	if [[ ! $ip =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]]; then
		_nl_err "not an IPv4 address: '$ip'"
		return 1
	fi
	for o in ${ip//./ }; do
		if ((10#$o > 255)); then
			_nl_err "not an IPv4 address: '$ip'"
			return 1
		fi
	done
	local n
	n=$(_nl_ip2int "$ip")
	if (((n >> 17) != ($(_nl_ip2int 198.18.0.0) >> 17))); then
		_nl_err "address $ip is outside 198.18.0.0/15 (the only range tests may use)"
		return 1
	fi
}

# _nl_parse_net NET/PLEN -> "netint plen" (host bits must be zero).
_nl_parse_net() {
	local net=${1%/*} plen=${1#*/}
	if [[ $1 != */* || ! $plen =~ ^[0-9]+$ ]] || ((plen < 8 || plen > 30)); then
		_nl_err "not a subnet (want A.B.C.D/8..30): '$1'"
		return 1
	fi
	_nl_check_ip "$net" || return 1
	local n mask
	n=$(_nl_ip2int "$net")
	mask=$(((0xffffffff << (32 - plen)) & 0xffffffff))
	if ((n & ~mask & 0xffffffff)); then
		_nl_err "subnet $1 has host bits set"
		return 1
	fi
	echo "$n $plen"
}

# _nl_in_net IP NETINT PLEN: IP is a usable host address of the subnet.
_nl_in_net() {
	local n mask
	n=$(_nl_ip2int "$1")
	mask=$(((0xffffffff << (32 - $3)) & 0xffffffff))
	(((n & mask) == $2)) || return 1
	local host=$((n & ~mask & 0xffffffff))
	((host != 0 && host != (~mask & 0xffffffff)))
}

# --------------------------------------------------------------- namespaces

# netlab_ns NAME: the full namespace name of NAME in this run.
netlab_ns() { echo "${NETLAB_PREFIX}$1"; }

_nl_check_name() {
	if [[ ! $1 =~ ^[a-z0-9][a-z0-9-]{0,23}$ ]]; then
		_nl_err "bad name '$1' (want [a-z0-9][a-z0-9-]{0,23})"
		return 1
	fi
	if ip netns list 2>/dev/null | grep -qx "$(netlab_ns "$1")\( .*\)\?"; then
		_nl_err "namespace for '$1' exists already"
		return 1
	fi
}

# _nl_mkns NAME: a namespace with lo up, IPv6 off, no routes.
_nl_mkns() {
	local ns
	ns=$(netlab_ns "$1")
	_nl_do ip netns add "$ns" || return 1
	_NL_NS+=("$ns")
	_nl_do ip -n "$ns" link set lo up || return 1
	if [[ -e /proc/sys/net/ipv6 ]]; then
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
			net.ipv6.conf.default.disable_ipv6=1 >/dev/null || return 1
	fi
	_nl_log "namespace $ns"
}

_nl_sysctl() {
	_nl_do ip netns exec "$(netlab_ns "$1")" sysctl -qw "$2" >/dev/null
}

# _nl_attach NAME IFACE SWITCH-NS BRIDGE: a veth from namespace NAME (IFACE)
# to a new port of BRIDGE in SWITCH-NS; records the link for impairments.
_nl_attach() {
	local ns sw=$3 br=$4 port
	ns=$(netlab_ns "$1")
	_NL_SEQ=$((_NL_SEQ + 1))
	port="p$_NL_SEQ"
	_nl_do ip -n "$sw" link add "$port" type veth peer name "$2" netns "$ns" || return 1
	_nl_do ip -n "$sw" link set "$port" master "$br" up || return 1
	_nl_do ip -n "$ns" link set "$2" up || return 1
	_NL_LINK["$1/$2"]="$sw $port $br"
}

# The public switch: a namespace holding one bridge, created on first use.
# Not to be called in $(...): it records what it creates.
_nl_public_switch() {
	local sw
	sw=$(netlab_ns pub)
	if [[ -z ${_NL_PUB_READY:-} ]]; then
		_nl_mkns pub || return 1
		_nl_do ip -n "$sw" link add br0 type bridge || return 1
		_nl_do ip -n "$sw" link set br0 up || return 1
		_NL_PUB_READY=1
	fi
}

# ----------------------------------------------------------- init, cleanup

# netlab_init: pick a unique prefix, make the run's scratch folder, install
# the cleanup traps. Call once, before anything else.
netlab_init() {
	if [[ -n $NETLAB_PREFIX ]]; then
		_nl_err "netlab_init called twice"
		return 1
	fi
	if [[ $(id -u) -ne 0 ]]; then
		_nl_err "must run as root (network namespaces)"
		return 1
	fi
	netlab_require ip iptables tc setsid timeout ss || return 1
	local rnd
	rnd=$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n')
	# nl<owner pid>-<random>-: the pid lets a sweep of a killed run's leftovers
	# tell them from a live run's (netlab_sweep_stale).
	NETLAB_PREFIX="nl$$-$rnd-"
	NETLAB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/netlab.$$.XXXXXX") || return 1
	_NL_PUB_NET=$(_nl_parse_net "$NETLAB_PUBLIC_NET") || return 1
	trap '_nl_on_exit' EXIT
	trap '_nl_on_signal INT 130' INT
	trap '_nl_on_signal TERM 143' TERM
	trap '_nl_on_signal HUP 129' HUP
	_nl_log "prefix $NETLAB_PREFIX, dir $NETLAB_DIR"
}

_nl_on_exit() {
	local rc=$?
	if ! netlab_cleanup "$rc" && ((rc == 0)); then
		rc=1
	fi
	exit "$rc"
}

_nl_on_signal() {
	trap - "$1"
	_nl_err "caught SIG$1, cleaning up"
	netlab_cleanup "$2" || true
	trap - EXIT
	exit "$2"
}

# netlab_on_cleanup CMD...: run CMD (as one eval'd string) first at cleanup.
netlab_on_cleanup() { _NL_ON_CLEANUP+=("$*"); }

_nl_dead() {
	local st
	[[ -r /proc/$1/stat ]] || return 0
	st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 0
	[[ $st == Z || $st == X || -z $st ]]
}

# _nl_ns_pids NS...: every process living in these namespaces (all of them
# started by this run; zombies are not listed).
_nl_ns_pids() {
	local ns
	for ns in "$@"; do
		[[ -e /run/netns/$ns ]] && ip netns pids "$ns" 2>/dev/null
	done | sort -un | tr '\n' ' '
}

# _nl_ours PID: PID still lives in one of this run's namespaces, so it is
# one of ours (a pid of a process that ended may have been reused).
_nl_ours() {
	local p
	for p in $(_nl_ns_pids "${_NL_NS[@]}"); do
		[[ $p == "$1" ]] && return 0
	done
	return 1
}

# _nl_stop PIDS...: TERM each, KILL what is left after ~3 s, reap our
# children. Only ever given pids found in this run's namespaces.
_nl_stop() {
	local p i left
	(($#)) || return 0
	kill -TERM "$@" 2>/dev/null || true
	for ((i = 0; i < 60; i++)); do
		left=0
		for p in "$@"; do _nl_dead "$p" || left=1; done
		((left)) || break
		sleep 0.05
	done
	for p in "$@"; do
		if ! _nl_dead "$p"; then
			_nl_err "process $p ignored SIGTERM, killing"
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# netlab_cleanup [RC]: stop every process, delete every namespace of this
# run (links, bridges and TAPs go with them); checks nothing is left.
# With RC non-zero the tails of the run's logs go to stderr first.
# Returns 1 if something could not be removed.
netlab_cleanup() {
	local rc=${1:-0} c ns i p bad=0
	[[ -n $NETLAB_PREFIX ]] || return 0
	((_NL_CLEANED)) && return 0
	_NL_CLEANED=1
	# A second Ctrl-C must not cut the cleanup short (it is bounded anyway).
	trap '' INT TERM HUP
	for c in "${_NL_ON_CLEANUP[@]}"; do eval "$c" || true; done
	if ((rc != 0)); then
		netlab_dump_logs || true
	fi
	# Every process in our namespaces was started by this run: the ones
	# from netlab_spawn and whatever they or the test started there. Twice,
	# for processes forked while the first round stopped their parents.
	local pids
	for i in 1 2; do
		# shellcheck disable=SC2046
		_nl_stop $(_nl_ns_pids "${_NL_NS[@]}")
	done
	pids=$(_nl_ns_pids "${_NL_NS[@]}")
	if [[ -n ${pids// /} ]]; then
		_nl_err "processes still running in this run's namespaces: $pids"
		bad=1
	fi
	for p in "${_NL_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for ((i = ${#_NL_NS[@]} - 1; i >= 0; i--)); do
		ip netns del "${_NL_NS[i]}" 2>/dev/null || true
	done
	for ns in "${_NL_NS[@]}"; do
		if [[ -e /run/netns/$ns ]]; then
			_nl_err "namespace $ns is still there after cleanup"
			bad=1
		fi
	done
	if [[ -n $NETLAB_DIR && -d $NETLAB_DIR ]]; then
		if [[ ${NETLAB_KEEP:-0} == 1 ]]; then
			_nl_err "kept logs in $NETLAB_DIR"
		else
			rm -rf -- "$NETLAB_DIR"
		fi
	fi
	((bad == 0))
}

# netlab_dump_logs: the last lines of every background process's log.
netlab_dump_logs() {
	local f
	[[ -n $NETLAB_DIR && -d $NETLAB_DIR ]] || return 0
	for f in "$NETLAB_DIR"/*.log; do
		[[ -s $f ]] || continue
		printf -- '--- %s (last 30 lines)\n' "${f##*/}" >&2
		tail -n 30 "$f" >&2
	done
}

# netlab_sweep_stale: delete namespaces and scratch folders left by netlab
# runs whose owning shell is gone (a run killed with SIGKILL cannot clean up
# after itself). Only names of netlab's own pattern whose owner pid is dead
# are touched. Needs no netlab_init.
netlab_sweep_stale() {
	local ns pid
	while read -r ns _; do
		[[ $ns =~ ^nl([0-9]+)-[0-9a-f]{4}- ]] || continue
		pid=${BASH_REMATCH[1]}
		[[ -d /proc/$pid ]] && continue
		# shellcheck disable=SC2046
		_nl_stop $(_nl_ns_pids "$ns")
		ip netns del "$ns" && _nl_err "removed stale namespace $ns"
	done < <(ip netns list 2>/dev/null)
	local d
	for d in "${TMPDIR:-/tmp}"/netlab.*.??????; do
		[[ -d $d && ${d##*/} =~ ^netlab\.([0-9]+)\. ]] || continue
		[[ -d /proc/${BASH_REMATCH[1]} ]] && continue
		rm -rf -- "$d" && _nl_err "removed stale scratch folder $d"
	done
}

# ------------------------------------------------------------------ checks

# netlab_require TOOL...: fail loudly (never skip) when a tool is missing.
netlab_require() {
	local t missing=()
	for t in "$@"; do
		if [[ $t == */* ]]; then
			[[ -x $t ]] || missing+=("$t")
		else
			command -v "$t" >/dev/null 2>&1 || missing+=("$t")
		fi
	done
	if ((${#missing[@]})); then
		_nl_err "missing required tool(s): ${missing[*]} (make deps / make)"
		return 1
	fi
}

# netlab_pass NAME / netlab_fail NAME MESSAGE: the one-line verdicts.
netlab_pass() { echo "PASS $1"; }
netlab_fail() {
	echo "FAIL $1: ${*:2}"
	return 1
}

# netlab_wait_until SECONDS DESCRIPTION CMD...: poll CMD every 50 ms.
netlab_wait_until() {
	local secs=$1 what=$2 end
	shift 2
	end=$((SECONDS + secs))
	while ((SECONDS <= end)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	_nl_err "timed out after ${secs}s waiting for $what"
	return 1
}

_nl_listening() {
	local ns=$1 proto=$2 port=$3
	ip netns exec "$ns" ss -Hln"$proto" "sport = :$port" 2>/dev/null | grep -q .
}

# netlab_wait_listen NAME tcp|udp PORT [SECONDS]: until something listens.
netlab_wait_listen() {
	local p
	case $2 in tcp) p=t ;; udp) p=u ;; *)
		_nl_err "netlab_wait_listen: protocol must be tcp or udp"
		return 1
		;;
	esac
	netlab_wait_until "${4:-10}" "$2 port $3 in $1" _nl_listening "$(netlab_ns "$1")" "$p" "$3"
}

# ------------------------------------------------------------------- hosts

# netlab_public_host NAME IP: a host on the public segment (NETLAB_PUBLIC_NET,
# default 198.18.0.0/24) with eth0 = IP. It has no default route: it
# reaches the public segment only.
netlab_public_host() {
	_nl_need_init || return 1
	if (($# != 2)); then
		_nl_err "usage: netlab_public_host NAME IP"
		return 1
	fi
	local name=$1 ip=$2 sw net plen
	_nl_check_name "$name" && _nl_check_ip "$ip" || return 1
	read -r net plen <<<"$_NL_PUB_NET"
	if ! _nl_in_net "$ip" "$net" "$plen"; then
		_nl_err "$ip is not a host address of the public segment $NETLAB_PUBLIC_NET"
		return 1
	fi
	_nl_public_switch || return 1
	sw=$(netlab_ns pub)
	_nl_mkns "$name" || return 1
	_nl_attach "$name" eth0 "$sw" br0 || return 1
	_nl_do ip -n "$(netlab_ns "$name")" addr add "$ip/$plen" dev eth0 || return 1
	_nl_log "public host $name $ip/$plen"
}

# netlab_nat NAME PUBLIC_IP TYPE INSIDE_SUBNET: a NAT box. eth0 on the public
# segment with PUBLIC_IP, bridge lan0 inside with the subnet's first address
# as gateway. TYPE:
#   eim        MASQUERADE keeping the source port (endpoint-independent
#              mapping) and the contract's rule: unsolicited UDP addressed to
#              the NAT itself on eth0 is dropped in filter INPUT
#   eim-open   the same without that INPUT rule (many real Linux routers)
#   symmetric  MASQUERADE --random-fully: a new random port per destination,
#              with the INPUT rule
#   udp-drop   eim, plus every UDP packet forwarded to or from eth0 dropped:
#              only TCP (and ICMP) pass
# Filtering is address-and-port dependent for every type (Linux conntrack).
netlab_nat() {
	_nl_need_init || return 1
	if (($# != 4)); then
		_nl_err "usage: netlab_nat NAME PUBLIC_IP TYPE INSIDE_SUBNET"
		return 1
	fi
	local name=$1 ip=$2 type=$3 subnet=$4 sw ns pnet pplen net plen gw
	case $type in eim | eim-open | symmetric | udp-drop) ;; *)
		_nl_err "unknown NAT type '$type' (eim, eim-open, symmetric, udp-drop)"
		return 1
		;;
	esac
	_nl_check_name "$name" && _nl_check_ip "$ip" || return 1
	read -r pnet pplen <<<"$_NL_PUB_NET"
	if ! _nl_in_net "$ip" "$pnet" "$pplen"; then
		_nl_err "$ip is not a host address of the public segment $NETLAB_PUBLIC_NET"
		return 1
	fi
	read -r net plen < <(_nl_parse_net "$subnet") || return 1
	[[ -n $net ]] || return 1
	if ((net >> (32 - pplen) << (32 - pplen) == pnet || pnet >> (32 - plen) << (32 - plen) == net)); then
		_nl_err "inside subnet $subnet overlaps the public segment $NETLAB_PUBLIC_NET"
		return 1
	fi
	gw=$(_nl_int2ip $((net + 1)))
	_nl_public_switch || return 1
	sw=$(netlab_ns pub)
	_nl_mkns "$name" || return 1
	ns=$(netlab_ns "$name")
	_nl_attach "$name" eth0 "$sw" br0 || return 1
	_nl_do ip -n "$ns" addr add "$ip/$pplen" dev eth0 || return 1
	_nl_do ip -n "$ns" link add lan0 type bridge || return 1
	# A bridge takes the lowest MAC of its ports unless given one: pin it,
	# so moving a port into a delay element later does not change the
	# gateway's MAC under the hosts' ARP caches.
	_nl_do ip -n "$ns" link set lan0 address "02:6e:6c:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))" || return 1
	_nl_do ip -n "$ns" addr add "$gw/$plen" dev lan0 || return 1
	_nl_do ip -n "$ns" link set lan0 up || return 1
	_nl_sysctl "$name" net.ipv4.ip_forward=1 || return 1
	local ipt=(ip netns exec "$ns" iptables -w 5)
	case $type in
	symmetric) _nl_do "${ipt[@]}" -t nat -A POSTROUTING -o eth0 -j MASQUERADE --random-fully || return 1 ;;
	*) _nl_do "${ipt[@]}" -t nat -A POSTROUTING -o eth0 -j MASQUERADE || return 1 ;;
	esac
	if [[ $type != eim-open ]]; then
		# CONTRACT section 6: without this, a peer's early probe creates a
		# conntrack entry that makes MASQUERADE pick a new port later.
		_nl_do "${ipt[@]}" -A INPUT -i eth0 -p udp -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP || return 1
	fi
	if [[ $type == udp-drop ]]; then
		_nl_do "${ipt[@]}" -A FORWARD -i eth0 -p udp -j DROP || return 1
		_nl_do "${ipt[@]}" -A FORWARD -o eth0 -p udp -j DROP || return 1
	fi
	_NL_NAT_NET[$name]="$net $plen $gw"
	_NL_NAT_TYPE[$name]=$type
	_nl_log "nat $name $type $ip inside $subnet (gw $gw)"
}

# netlab_host_behind NAT NAME IP: a host inside NAT's subnet, default route
# via the NAT (which itself has no route beyond the public segment).
netlab_host_behind() {
	_nl_need_init || return 1
	if (($# != 3)); then
		_nl_err "usage: netlab_host_behind NAT NAME IP"
		return 1
	fi
	local nat=$1 name=$2 ip=$3 net plen gw
	if [[ -z ${_NL_NAT_NET[$nat]:-} ]]; then
		_nl_err "no NAT named '$nat'"
		return 1
	fi
	read -r net plen gw <<<"${_NL_NAT_NET[$nat]}"
	_nl_check_name "$name" && _nl_check_ip "$ip" || return 1
	if ! _nl_in_net "$ip" "$net" "$plen" || [[ $ip == "$gw" ]]; then
		_nl_err "$ip is not a free host address of $(_nl_int2ip "$net")/$plen (gateway $gw)"
		return 1
	fi
	_nl_mkns "$name" || return 1
	_nl_attach "$name" eth0 "$(netlab_ns "$nat")" lan0 || return 1
	_nl_do ip -n "$(netlab_ns "$name")" addr add "$ip/$plen" dev eth0 || return 1
	_nl_do ip -n "$(netlab_ns "$name")" route add default via "$gw" dev eth0 || return 1
	_nl_log "host $name $ip behind $nat"
}

# --------------------------------------------------------------- processes

# netlab_exec NAME CMD...: run CMD in NAME's namespace in the foreground,
# bounded by NETLAB_TIMEOUT seconds (exit 124 when it runs over).
netlab_exec() {
	_nl_need_init || return 1
	local ns
	ns=$(netlab_ns "$1")
	shift
	timeout --foreground -k 5 "$NETLAB_TIMEOUT" ip netns exec "$ns" "$@"
}

# netlab_spawn NAME CMD...: run CMD in NAME's namespace in the background,
# in its own process group, stdin from /dev/null, stdout and stderr to a
# log file. Sets NETLAB_LAST_PID and NETLAB_LAST_LOG; cleanup stops it.
# Call it directly (not in $(...)) so the globals and the tracking stay.
netlab_spawn() {
	_nl_need_init || return 1
	local name=$1 ns log
	shift
	ns=$(netlab_ns "$name")
	if [[ ! -e /run/netns/$ns ]]; then
		_nl_err "netlab_spawn: no namespace '$name'"
		return 1
	fi
	_NL_SEQ=$((_NL_SEQ + 1))
	log="$NETLAB_DIR/$_NL_SEQ-$name-${1##*/}.log"
	setsid ip netns exec "$ns" "$@" </dev/null >"$log" 2>&1 &
	NETLAB_LAST_PID=$!
	NETLAB_LAST_LOG=$log
	_NL_PIDS+=("$NETLAB_LAST_PID")
	_nl_log "spawned $NETLAB_LAST_PID in $name: $*"
}

# netlab_kill PID: stop one process of this run (TERM, then KILL after 3 s).
# A pid no longer in this run's namespaces has ended already: left alone.
netlab_kill() {
	if _nl_ours "$1"; then
		_nl_stop "$1"
	else
		wait "$1" 2>/dev/null || true
	fi
}

# netlab_alive PID: the spawned process is still running.
netlab_alive() { ! _nl_dead "$1"; }

# -------------------------------------------------------------- impairments

_nl_link_of() {
	if [[ -z ${_NL_LINK["$1/$2"]:-} ]]; then
		_nl_err "no netlab link '$2' in '$1' (eth0 of a host or NAT made by netlab)"
		return 1
	fi
	echo "${_NL_LINK["$1/$2"]}"
}

_nl_dir_ok() {
	case $1 in in | out | both) return 0 ;; esac
	_nl_err "direction must be in, out or both, not '$1'"
	return 1
}

# netlab_loss NAME IFACE PERCENT [out|in|both]: drop PERCENT % of the packets
# leaving (out, default) and/or entering (in) IFACE at random, with
# iptables' statistic match (mangle POSTROUTING / raw PREROUTING).
netlab_loss() {
	_nl_need_init || return 1
	local name=$1 ifc=$2 pct=$3 dir=${4:-out} ns prob
	_nl_dir_ok "$dir" || return 1
	if [[ ! $pct =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v p="$pct" 'BEGIN{exit !(p>=0 && p<=100)}'; then
		_nl_err "loss percent must be 0..100, not '$pct'"
		return 1
	fi
	_nl_link_of "$name" "$ifc" >/dev/null || return 1
	ns=$(netlab_ns "$name")
	prob=$(awk -v p="$pct" 'BEGIN{printf "%.6f", p/100}')
	local ipt=(ip netns exec "$ns" iptables -w 5)
	if [[ $dir != in ]]; then
		_nl_do "${ipt[@]}" -t mangle -A POSTROUTING -o "$ifc" -m statistic --mode random --probability "$prob" -j DROP || return 1
	fi
	if [[ $dir != out ]]; then
		_nl_do "${ipt[@]}" -t raw -A PREROUTING -i "$ifc" -m statistic --mode random --probability "$prob" -j DROP || return 1
	fi
	_nl_log "loss $pct% $dir on $name/$ifc"
}

# _nl_tbf NS DEV RATE: token bucket on DEV's egress. The bucket holds 5 ms
# of traffic (at least 3000 bytes), the queue at most 50 ms.
_nl_tbf() {
	local bytes burst
	bytes=$(_nl_rate_bytes "$3") || return 1
	burst=$((bytes / 200))
	((burst < 3000)) && burst=3000
	_nl_do tc -n "$1" qdisc replace dev "$2" root tbf rate "$3" burst "$burst" latency 50ms
}

# _nl_rate_bytes RATE: bytes per second of a tc rate (bit, kbit, mbit, gbit,
# bps, kbps, mbps).
_nl_rate_bytes() {
	local r=${1,,} n unit
	if [[ ! $r =~ ^([0-9]+)(bit|kbit|mbit|gbit|bps|kbps|mbps)$ ]]; then
		_nl_err "rate must look like 10mbit, 500kbit or 1mbps, not '$1'"
		return 1
	fi
	n=${BASH_REMATCH[1]}
	unit=${BASH_REMATCH[2]}
	case $unit in
	bit) echo $((n / 8)) ;; kbit) echo $((n * 125)) ;;
	mbit) echo $((n * 125000)) ;; gbit) echo $((n * 125000000)) ;;
	bps) echo "$n" ;; kbps) echo $((n * 1000)) ;; mbps) echo $((n * 1000000)) ;;
	esac
}

# netlab_rate NAME IFACE RATE [out|in|both]: limit IFACE's sending (out,
# default) with tbf on IFACE, and/or its receiving (in) with tbf on the
# switch port facing it. RATE in tc syntax: 10mbit, 512kbit.
netlab_rate() {
	_nl_need_init || return 1
	local name=$1 ifc=$2 rate=$3 dir=${4:-out} sw port br
	_nl_dir_ok "$dir" || return 1
	read -r sw port br < <(_nl_link_of "$name" "$ifc") || return 1
	[[ -n $sw ]] || return 1
	if [[ $dir != in ]]; then
		_nl_tbf "$(netlab_ns "$name")" "$ifc" "$rate" || return 1
	fi
	if [[ $dir != out ]]; then
		_nl_tbf "$sw" "$port" "$rate" || return 1
	fi
	_nl_log "rate $rate $dir on $name/$ifc"
}

# netlab_delay NAME IFACE MS [QUEUE]: put the delay element (netlab-delayd)
# into the link of IFACE: every frame, either way, is held MS milliseconds,
# so a round trip over the link grows by 2*MS. QUEUE (default 1000) frames
# may wait per direction; more are dropped and counted. The element sits in
# the switch namespace: the link's switch port moves to a private bridge
# with TAP a, and TAP b takes its place on the switch:
#   IFACE ==veth== port -[bridge dbrN]- tapa <delayd> tapb -[switch bridge]
# Sets NETLAB_LAST_PID to delayd (netlab_delay_stats prints its counters).
netlab_delay() {
	_nl_need_init || return 1
	local name=$1 ifc=$2 ms=$3 queue=${4:-1000} sw port br n ready
	if [[ ! $ms =~ ^[0-9]+$ || ! $queue =~ ^[0-9]+$ ]]; then
		_nl_err "usage: netlab_delay NAME IFACE MS [QUEUE]"
		return 1
	fi
	if [[ -n ${_NL_DELAYD["$name/$ifc"]:-} ]]; then
		_nl_err "link $name/$ifc has a delay already"
		return 1
	fi
	netlab_require "$NETLAB_DELAYD" || return 1
	read -r sw port br < <(_nl_link_of "$name" "$ifc") || return 1
	[[ -n $sw ]] || return 1
	_NL_SEQ=$((_NL_SEQ + 1))
	n=$_NL_SEQ
	ready="$NETLAB_DIR/delayd-$n.ready"
	# netlab_spawn wants a short name: the switch namespace without prefix.
	netlab_spawn "${sw#"$NETLAB_PREFIX"}" "$NETLAB_DELAYD" --delay "$ms" --queue "$queue" \
		--tap-a "dla$n" --tap-b "dlb$n" --ready-file "$ready" || return 1
	local pid=$NETLAB_LAST_PID log=$NETLAB_LAST_LOG
	if ! netlab_wait_until 5 "netlab-delayd to start" test -e "$ready"; then
		cat "$log" >&2
		return 1
	fi
	_nl_do ip -n "$sw" link add "dbr$n" type bridge || return 1
	_nl_do ip -n "$sw" link set "$port" nomaster || return 1
	_nl_do ip -n "$sw" link set "$port" master "dbr$n" || return 1
	_nl_do ip -n "$sw" link set "dla$n" master "dbr$n" up || return 1
	_nl_do ip -n "$sw" link set "dbr$n" up || return 1
	_nl_do ip -n "$sw" link set "dlb$n" master "$br" up || return 1
	# The link's switch side is now TAP b (netlab_rate ... in shapes it).
	_NL_LINK["$name/$ifc"]="$sw dlb$n $br"
	_NL_DELAYD["$name/$ifc"]=$pid
	_NL_DELAYD_LOG["$name/$ifc"]=$log
	NETLAB_LAST_PID=$pid
	_nl_log "delay ${ms}ms (queue $queue) on $name/$ifc, delayd $pid"
}

# netlab_delay_stats NAME IFACE: the delay element's counters, one line:
# "a2b_fwd=N a2b_drop=N b2a_fwd=N b2a_drop=N ..." (a is IFACE's side).
netlab_delay_stats() {
	local pid=${_NL_DELAYD["$1/$2"]:-} log=${_NL_DELAYD_LOG["$1/$2"]:-} i n0 line
	if [[ -z $pid ]]; then
		_nl_err "no delay on $1/$2"
		return 1
	fi
	n0=$(grep -c '^delayd: stats' "$log" || true)
	kill -USR1 "$pid" || return 1
	for ((i = 0; i < 40; i++)); do
		(($(grep -c '^delayd: stats' "$log" || true) > n0)) && break
		sleep 0.05
	done
	line=$(grep '^delayd: stats' "$log" | tail -n1)
	[[ -n $line ]] || return 1
	echo "${line#delayd: stats }"
}

# ------------------------------------------------- "what's my address" probe

# netlab_addr_server NAME udp|tcp PORT: a background server on NAME that
# answers every datagram (udp) or connection (tcp) on PORT with the
# sender's address as it sees it, "IP:PORT\n" (socat). Returns once it
# listens.
netlab_addr_server() {
	# shellcheck disable=SC2016 # expanded by the shell socat starts
	local name=$1 proto=$2 port=$3 reply='echo "$SOCAT_PEERADDR:$SOCAT_PEERPORT"'
	netlab_require socat || return 1
	# UDP: read the query line first, so socat never writes into a pipe
	# whose reader is gone (EPIPE would end that answer).
	case $proto in
	udp) netlab_spawn "$name" socat "UDP4-RECVFROM:$port,fork" "SYSTEM:read -r q; $reply" || return 1 ;;
	tcp) netlab_spawn "$name" socat "TCP4-LISTEN:$port,fork,reuseaddr" "SYSTEM:$reply" || return 1 ;;
	*)
		_nl_err "netlab_addr_server: protocol must be udp or tcp"
		return 1
		;;
	esac
	netlab_wait_listen "$name" "$proto" "$port" 5
}

# netlab_addr_query NAME udp|tcp IP PORT [SOURCE_PORT]: ask the address
# server at IP:PORT from NAME; prints "IP:PORT" it saw (the mapped address
# behind a NAT). Fails after 3 s without an answer.
netlab_addr_query() {
	local name=$1 proto=$2 ip=$3 port=$4 sport=${5:-} opts="" out
	_nl_check_ip "$ip" || return 1
	[[ -n $sport ]] && opts=",sourceport=$sport,reuseaddr"
	case $proto in
	udp) out=$(echo q | NETLAB_TIMEOUT=3 netlab_exec "$name" socat -T 2 - "UDP4:$ip:$port$opts" 2>/dev/null) || true ;;
	tcp) out=$(NETLAB_TIMEOUT=3 netlab_exec "$name" socat -T 2 -u "TCP4:$ip:$port,connect-timeout=2$opts" - 2>/dev/null) || true ;;
	*)
		_nl_err "netlab_addr_query: protocol must be udp or tcp"
		return 1
		;;
	esac
	out=$(head -n1 <<<"$out")
	[[ $out =~ ^[0-9.]+:[0-9]+$ ]] || return 1
	echo "$out"
}
