#!/usr/bin/env bash
# The whole test suite, in order: dependency check, build, every suite,
# the sanitizer build with its suites, and a short fuzzing pass. Runs
# every suite even after a failure, then prints one summary line
# "N passed, M failed" (suites) and exits non-zero if any failed.
# Nothing is skipped: a missing tool fails the dependency check.
#   --quick   only build, unit, conformance and hardening
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}

if ! bash scripts/deps.sh --check; then
	echo "run-tests: dependencies missing: run 'make deps' (as root) first" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "run-tests: the network-namespace suites need root" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

SUITES=(
	"build:make -j$JOBS all tests-build"
	"unit:make test-unit"
	"conformance:make test-conformance"
	"hardening:make test-hardening"
	"cli:make test-cli"
	"turn:make test-turn"
	"netlab:make test-netlab"
	"ha:make test-ha"
	"ha-cluster:make test-ha-cluster"
	"forward:make test-forward"
	"quic:make test-quic"
	"udpio:make test-udpio"
	"ice:make test-ice"
	"signaling:make test-signaling"
	"client-e2e:make test-client-e2e"
	"asan-build:make -j$JOBS SAN=1 all tests-build"
	"asan-unit:make SAN=1 test-unit"
	"asan-conformance:make SAN=1 test-conformance"
	"asan-hardening:make SAN=1 test-hardening"
	"asan-turn:make SAN=1 test-turn"
	"asan-forward:make SAN=1 test-forward"
	"asan-quic:make SAN=1 test-quic"
	"asan-udpio:make SAN=1 test-udpio"
	"asan-ice:make SAN=1 test-ice"
	"asan-signaling:make SAN=1 test-signaling"
	"fuzz:make fuzz-ci"
)
if [[ ${1:-} == --quick ]]; then
	SUITES=("${SUITES[0]}" "${SUITES[1]}" "${SUITES[2]}" "${SUITES[3]}" "${SUITES[4]}")
fi

pass=0 fail=0 failed=() summary=()
for entry in "${SUITES[@]}"; do
	name=${entry%%:*}
	cmd=${entry#*:}

	echo
	echo "=== $name: $cmd"
	start=$SECONDS
	if bash -c "$cmd"; then
		result=PASS
		pass=$((pass + 1))
	else
		result=FAIL
		fail=$((fail + 1))
		failed+=("$name")
	fi
	summary+=("$(printf '%-18s %s %4ds' "$name" "$result" $((SECONDS - start)))")
done

echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
((fail)) && echo "failed suites: ${failed[*]}"
echo "$pass passed, $fail failed"
((fail == 0))
