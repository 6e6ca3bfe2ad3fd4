#!/usr/bin/env bash
# run.sh: runs the netlab tests (tests/netlab/t-*.sh, or the ones named)
# one after another, each under timeout(1), and ends with one line
# "netlab: N passed, M failed". Fails loudly when a tool is missing, never
# skips. SIGINT/SIGTERM/SIGHUP are passed on to the running test's timeout,
# which hands them to the test's whole process group, so the test's own
# cleanup trap runs at once. Owns only the test processes it starts.
#   NETLAB_TEST_TIMEOUT  seconds per test (default 150), SIGKILL 15 s later
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

TIMEOUT=${NETLAB_TEST_TIMEOUT:-150}
TOOLS=(ip iptables tc socat iperf3 ping curl openssl od timeout setsid ss
	turnutils_stunclient turnutils_uclient)
missing=()
for t in "${TOOLS[@]}"; do
	command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if ((${#missing[@]})); then
	echo "netlab: missing tool(s): ${missing[*]} (make deps)" >&2
	echo "netlab: 0 passed, 1 failed"
	exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "netlab: the tests need root (network namespaces)" >&2
	echo "netlab: 0 passed, 1 failed"
	exit 1
fi

tests=("$@")
if ((${#tests[@]} == 0)); then
	for f in tests/netlab/t-*.sh; do tests+=("${f##*/}"); done
fi

cur=
stop=0
on_signal() {
	stop=$1
	[[ -n $cur ]] && kill -TERM "$cur" 2>/dev/null
	return 0
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

pass=0 fail=0 failed=()
for t in "${tests[@]}"; do
	t=${t##*/}
	if [[ ! -f tests/netlab/$t ]]; then
		echo "netlab: no test tests/netlab/$t" >&2
		fail=$((fail + 1))
		failed+=("$t")
		continue
	fi
	echo "== tests/netlab/$t"
	start=$SECONDS
	timeout -k 15 "$TIMEOUT" bash "tests/netlab/$t" &
	cur=$!
	# wait returns early when a signal arrives; wait again for the exit.
	while :; do
		wait "$cur"
		rc=$?
		kill -0 "$cur" 2>/dev/null || break
	done
	cur=
	if ((rc == 0)); then
		pass=$((pass + 1))
	else
		((rc == 124)) && echo "netlab: $t ran over ${TIMEOUT}s" >&2
		fail=$((fail + 1))
		failed+=("$t")
	fi
	echo "== tests/netlab/$t: rc=$rc, $((SECONDS - start)) s"
	((stop)) && break
done

((fail)) && echo "netlab: failed: ${failed[*]}" >&2
((stop)) && echo "netlab: interrupted" >&2
echo "netlab: $pass passed, $fail failed"
((stop)) && exit "$stop"
((fail == 0))
