# client: objects and programs this folder contributes (see the top-level Makefile).

# --- QUIC carrier: client/quic*.c, tests/client/quic/ (QUIC engineer's block) ---
# libre's headers need the defines libre itself is built with (re.mk);
# `+=` so other blocks can add their own client/ flags.
QUIC_RE_CFLAGS := $(shell pkg-config --cflags libre) -DHAVE_INTTYPES_H -DHAVE_STDBOOL_H -DHAVE_INET6
CFLAGS_client_ += $(QUIC_RE_CFLAGS)
CFLAGS_tests_client_quic_ += $(QUIC_RE_CFLAGS)
CLIENT_QUIC_OBJS := $(BUILD)/client/quic.o $(BUILD)/client/quic_tls.o
CLIENT_QUIC_LIBS := $(shell pkg-config --libs libngtcp2_crypto_gnutls libngtcp2 gnutls libre)
QUIC_TEST  := $(BIN)/quic-test
QUIC_BENCH := $(BIN)/quic-bench
TEST_PROGRAMS += $(QUIC_TEST) $(QUIC_BENCH)

$(QUIC_TEST): $(BUILD)/tests/client/quic/quic_test.o $(BUILD)/tests/client/quic/testpath.o $(CLIENT_QUIC_OBJS) $(BUILD)/common/log.o
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_QUIC_LIBS) -lpthread

$(QUIC_BENCH): $(BUILD)/tests/client/quic/quic_bench.o $(BUILD)/tests/client/quic/testpath.o $(CLIENT_QUIC_OBJS) $(BUILD)/common/log.o
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_QUIC_LIBS) -lpthread

.PHONY: test-quic quic-bench
# `make test-quic QUIC_TESTS="datagrams backpressure"` runs some of them.
test-quic: $(QUIC_TEST)
	$(Q)$(QUIC_TEST) $(QUIC_TESTS)

# Throughput of one stream over UDP on 127.0.0.1 (two processes).
quic-bench: $(QUIC_BENCH)
	$(Q)$(QUIC_BENCH) $(QUIC_BENCH_ARGS)
