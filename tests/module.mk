# tests/: every test suite's fragment, and the targets that run them.
# `make test` runs the whole suite through scripts/run-tests.sh, which
# checks that every tool is installed first (it never skips a test) and
# ends with one "N passed, M failed" line.

include tests/conformance/conformance.mk
include tests/netlab/netlab.mk
include tests/unit/unit.mk tests/fuzz/fuzz.mk tests/hardening/hardening.mk tests/cli/cli.mk

.PHONY: test test-quick
test:
	$(Q)bash scripts/run-tests.sh

test-quick:
	$(Q)bash scripts/run-tests.sh --quick
