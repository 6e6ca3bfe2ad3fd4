# tests/conformance/ and tests/tools/: the black-box conformance suite for
# the coordinator's signaling API (CONTRACT section 2) and meshreq, the
# signing HTTP probe. Included from tests/module.mk; uses the top-level
# generic rule $(BUILD)/%.o: %.c. Owns only these two programs and the
# test-conformance target.

TESTTOOLS_HTTPC_OBJS := $(BUILD)/tests/tools/httpc.o
TESTTOOLS_LIBS := -levent -ljansson -lcrypto

MESHREQ_OBJS := $(BUILD)/tests/tools/meshreq.o $(TESTTOOLS_HTTPC_OBJS)
CONFORMANCE_OBJS := $(BUILD)/tests/conformance/conformance.o $(TESTTOOLS_HTTPC_OBJS)

$(BIN)/meshreq: $(MESHREQ_OBJS) $(SIGNALING_CORE_OBJS) $(COMMON_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(TESTTOOLS_LIBS)

$(BIN)/conformance: $(CONFORMANCE_OBJS) $(SIGNALING_CORE_OBJS) $(COMMON_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(TESTTOOLS_LIBS)

TEST_PROGRAMS += $(BIN)/meshreq $(BIN)/conformance

.PHONY: test-conformance
# Starts its own coordinators on 127.0.0.1:17100-17199 (see run.sh).
test-conformance: $(BIN)/coordinator $(BIN)/conformance $(BIN)/meshreq
	$(Q)BIN=$(BIN) bash tests/conformance/run.sh
