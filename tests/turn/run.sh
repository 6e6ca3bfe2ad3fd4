#!/usr/bin/env bash
# run.sh: runs the embedded-relay tests (tests/turn/t-*.sh, or the ones
# named) one after another, each under timeout(1), and ends with one line
# "turn: N passed, M failed". SIGINT/SIGTERM/SIGHUP go on to the running
# test, whose own trap cleans up. Owns only the test processes it starts.
#   BIN                 where coordinator and meshreq are (default bin)
#   TURN_TEST_TIMEOUT   seconds per test (default 180), SIGKILL 15 s later
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

export BIN=${BIN:-bin}
TIMEOUT=${TURN_TEST_TIMEOUT:-180}

tests=("$@")
if ((${#tests[@]} == 0)); then
	for f in tests/turn/t-*.sh; do tests+=("${f##*/}"); done
fi

cur=
on_signal() {
	[[ -n $cur ]] && kill -TERM "$cur" 2>/dev/null
	return 0
}
trap on_signal INT TERM HUP

pass=0 fail=0 failed=()
for t in "${tests[@]}"; do
	t=${t##*/}
	if [[ ! -f tests/turn/$t ]]; then
		echo "turn: no test tests/turn/$t" >&2
		fail=$((fail + 1))
		failed+=("$t")
		continue
	fi
	echo "== tests/turn/$t"
	start=$SECONDS
	timeout -k 15 "$TIMEOUT" bash "tests/turn/$t" &
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
		echo "== PASS $t ($((SECONDS - start)) s)"
	else
		fail=$((fail + 1))
		failed+=("$t")
		echo "== FAIL $t (exit $rc, $((SECONDS - start)) s)"
	fi
done
echo "turn: $pass passed, $fail failed${failed:+ (${failed[*]})}"
((fail == 0))
