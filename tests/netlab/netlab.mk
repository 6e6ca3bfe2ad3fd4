# tests/netlab: the test-network harness (netlab.sh), its delay element
# netlab-delayd and its tests. Included from tests/module.mk; needs root.
#   make test-netlab                          every tests/netlab/t-*.sh in turn
#   make test-netlab NETLAB_TESTS=t-delay.sh  some of them
# Tests never skip: a missing tool fails them. Each runs under a timeout.
# NETLAB_BIN tells the scripts where the binaries are ($(BIN): build/san/bin
# under SAN=1).

NETLAB_DELAYD := $(BIN)/netlab-delayd
NETLAB_DELAYD_OBJS := $(BUILD)/tests/netlab/delayd.o

TEST_PROGRAMS += $(NETLAB_DELAYD)

$(NETLAB_DELAYD): $(NETLAB_DELAYD_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^

# Empty: every tests/netlab/t-*.sh. tests/netlab/run.sh checks the tools,
# runs each test under timeout(1) (NETLAB_TEST_TIMEOUT, default 150 s),
# passes Ctrl-C/SIGTERM on to the running test and prints the summary.
NETLAB_TESTS ?=

.PHONY: test-netlab
test-netlab: all $(NETLAB_DELAYD)
	$(Q)NETLAB_BIN=$(abspath $(BIN)) bash tests/netlab/run.sh $(NETLAB_TESTS)
