#!/usr/bin/env bash
# run.sh: the mesh-client end-to-end tests (tests/client/e2e/t-*.sh, or the
# ones named: "direct", "t-20-relay.sh", ...) one after another, each under
# timeout(1); then checks that no namespace or mesh-client process of these
# tests is left. Ends with one line "client-e2e: N passed, M failed" (N and
# M count the checks, "ok"/"not ok" lines, of all tests). Owns only the
# processes it starts; SIGINT/SIGTERM reach the running test, whose netlab
# trap cleans up. Other runs on the same machine (another checkout, another
# user of netlab) are left alone and do not count as left behind: what this
# run started is told apart by the test shells' pids, which netlab puts in
# its namespace names (nl<pid>-<random>-), and by E2E_RUN_ID, a per-run
# marker every process of the run inherits in its environment.
#   E2E_TEST_TIMEOUT  seconds per test (default 240)
set -uo pipefail
cd "$(dirname "$0")/../../.." || exit 1

TIMEOUT=${E2E_TEST_TIMEOUT:-240}
if [[ $(id -u) -ne 0 ]]; then
	echo "client-e2e: the tests need root (network namespaces)" >&2
	echo "client-e2e: 0 passed, 1 failed"
	exit 1
fi
tests=()
for a in "$@"; do
	f=$(ls tests/client/e2e/t-*"${a%.sh}"*.sh 2>/dev/null | head -1)
	if [[ -z $f ]]; then
		echo "client-e2e: no test matches '$a'" >&2
		echo "client-e2e: 0 passed, 1 failed"
		exit 2
	fi
	tests+=("$f")
done
((${#tests[@]})) || tests=(tests/client/e2e/t-*.sh)

tools=(ip iptables socat curl openssl timeout setsid cmp head)
# t-70-ha-failover runs three coordinators on Redis + Sentinel.
[[ " ${tests[*]} " == *t-70-ha-failover* ]] && tools+=(redis-server redis-sentinel redis-cli jq)
for t in "${tools[@]}"; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "client-e2e: missing tool $t (make deps)" >&2
		echo "client-e2e: 0 passed, 1 failed"
		exit 1
	fi
done

# The marker (see above): exported, so every test, netlab_spawn and
# mesh-client of this run carries it in /proc/PID/environ.
E2E_RUN_ID=e2e-$$-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
export E2E_RUN_ID
test_pids=()   # the test shells' pids: netlab names their namespaces nl<pid>-

cur=
on_signal() {
	[[ -n $cur ]] && kill -TERM "$cur" 2>/dev/null
	exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

pass=0 fail=0 start_all=$SECONDS
out=$(mktemp)
pidf=$(mktemp)
for t in "${tests[@]}"; do
	echo "== $t"
	start=$SECONDS
	: >"$pidf"
	# The test's shell writes its pid, then becomes the test (exec keeps
	# the pid, so it is the one in the test's netlab namespace names).
	# shellcheck disable=SC2016
	timeout -k 15 "$TIMEOUT" bash -c 'echo "$$" >"$1" && exec bash "$2"' e2e "$pidf" "$t" >"$out" 2>&1 &
	cur=$!
	wait "$cur"
	rc=$?
	cur=
	tp=$(cat "$pidf" 2>/dev/null)
	[[ $tp =~ ^[0-9]+$ ]] && test_pids+=("$tp")
	cat "$out"
	p=$(grep -c '^ok ' "$out")
	f=$(grep -c '^not ok ' "$out")
	if ((rc != 0 && f == 0)); then
		echo "not ok - $t exited $rc"
		f=1
	fi
	pass=$((pass + p)) fail=$((fail + f))
	echo "== $t: $p passed, $f failed, $((SECONDS - start)) s"
done
rm -f "$out" "$pidf"

# Nothing left behind by this run: no namespace of one of its tests (named
# nl<test pid>-<4 hex>-, its owner gone: a live owner is a later run that
# got the pid again), no mesh-client carrying this run's marker.
left_ns=$(ip netns list 2>/dev/null | awk '{print $1}' | while read -r ns; do
	[[ $ns =~ ^nl([0-9]+)-[0-9a-f]{4}- ]] || continue
	pid=${BASH_REMATCH[1]}
	[[ " ${test_pids[*]} " == *" $pid "* ]] || continue
	kill -0 "$pid" 2>/dev/null || echo "$ns"
done)
left_proc=$(pgrep -x mesh-client 2>/dev/null | while read -r p; do
	tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "E2E_RUN_ID=$E2E_RUN_ID" && echo "$p"
done)
if [[ -z $left_ns && -z $left_proc ]]; then
	echo "ok - nothing left behind (namespaces, mesh-client processes)"
	pass=$((pass + 1))
else
	echo "not ok - left behind: namespaces [${left_ns//$'\n'/ }] processes [${left_proc//$'\n'/ }]"
	fail=$((fail + 1))
fi
echo "client-e2e: $pass passed, $fail failed, $((SECONDS - start_all)) s"
((fail == 0))
