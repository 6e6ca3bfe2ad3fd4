# tests/netlab: the test-network harness (netlab.sh), its delay element
# netlab-delayd and its tests. Included from tests/module.mk; needs root.
#   make test-netlab                          every tests/netlab/t-*.sh in turn
#   make test-netlab NETLAB_TESTS=t-delay.sh  some of them
# Tests never skip: a missing tool fails them. Each runs under a timeout.

NETLAB_DELAYD := $(BIN)/netlab-delayd
NETLAB_DELAYD_OBJS := $(BUILD)/tests/netlab/delayd.o

TEST_PROGRAMS += $(NETLAB_DELAYD)

$(NETLAB_DELAYD): $(NETLAB_DELAYD_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^

NETLAB_TESTS ?= $(sort $(notdir $(wildcard tests/netlab/t-*.sh)))
# Seconds one test script may run before it is stopped (SIGTERM, which its
# cleanup trap handles; SIGKILL 15 s later).
NETLAB_TEST_TIMEOUT ?= 150

.PHONY: test-netlab
test-netlab: all $(NETLAB_DELAYD)
	$(Q)for t in ip iptables tc socat iperf3 ping curl openssl timeout setsid \
		turnutils_stunclient turnutils_uclient; do \
		command -v $$t >/dev/null 2>&1 || { echo "test-netlab: missing tool: $$t (make deps)" >&2; exit 1; }; \
	done
	$(Q)pass=0; fail=0; failed=; \
	for t in $(NETLAB_TESTS); do \
		echo "== tests/netlab/$$t"; \
		if NETLAB_BIN=$(abspath $(BIN)) timeout -k 15 $(NETLAB_TEST_TIMEOUT) bash tests/netlab/$$t; then \
			pass=$$((pass + 1)); \
		else \
			fail=$$((fail + 1)); failed="$$failed $$t"; \
		fi; \
	done; \
	echo "netlab: $$pass passed, $$fail failed"; \
	if [ $$fail -ne 0 ]; then echo "netlab: failed:$$failed" >&2; exit 1; fi
