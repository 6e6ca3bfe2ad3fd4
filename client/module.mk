# client: objects and programs this folder contributes (see the top-level Makefile).

# --- QUIC carrier: client/quic*.c, tests/client/quic/ (QUIC engineer's block) ---
# libre's headers need the defines libre itself is built with (re.mk);
# `+=` so other blocks can add their own client/ flags.
QUIC_RE_CFLAGS := $(shell pkg-config --cflags libre) -DHAVE_INTTYPES_H -DHAVE_STDBOOL_H -DHAVE_INET6
CFLAGS_client_ += $(QUIC_RE_CFLAGS)
CFLAGS_tests_client_quic_ += $(QUIC_RE_CFLAGS)
CLIENT_QUIC_OBJS := $(BUILD)/client/quic.o $(BUILD)/client/quic_tls.o $(BUILD)/client/hrtimer.o
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

# --- Port forwarding: peer table and forwarder (client/peers.c,
# client/forward.c, client/fwd_*.c) and its tests in tests/client/forward/
# (forwarding engineer's block) ---
#   make test-forward                                   every test
#   make test-forward FORWARD_TESTS="udp_identity tcp_half_close"  some
# libre's headers need the defines libre is built with (re.mk); added to
# client/ only where another block has not added them already.
FWD_RE_CFLAGS := $(shell pkg-config --cflags libre) -DHAVE_INTTYPES_H -DHAVE_STDBOOL_H -DHAVE_INET6
FWD_RE_MISSING := $(filter-out $(CFLAGS_client_),$(FWD_RE_CFLAGS))
CFLAGS_client_ += $(FWD_RE_MISSING)
CFLAGS_tests_client_forward_ += $(FWD_RE_CFLAGS)

CLIENT_FWD_SRCS := client/peers.c client/forward.c client/fwd_frame.c \
	client/fwd_sock.c client/fwd_tcp.c client/fwd_udp.c
CLIENT_FWD_OBJS := $(CLIENT_FWD_SRCS:%.c=$(BUILD)/%.o)
CLIENT_FWD_LIBS := -lre -ljansson -lssl -lcrypto -lpthread

FORWARD_TEST := $(BIN)/forward-test
FORWARD_TEST_OBJS := $(addprefix $(BUILD)/tests/client/forward/, \
	forward_test.o test_peers.o test_fwd.o carrier_pair.o)
TEST_PROGRAMS += $(FORWARD_TEST)

$(FORWARD_TEST): $(FORWARD_TEST_OBJS) $(CLIENT_FWD_OBJS) $(BUILD)/common/log.o
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_FWD_LIBS)

.PHONY: test-forward
test-forward: $(FORWARD_TEST)
	$(Q)$(FORWARD_TEST) $(FORWARD_TESTS)

# --- ICE: client/ice*.c, client/turn_tcp.c, tests/client/ice/ (ICE engineer's block) ---
# libre's flags for client/ (added only if another block has not already)
# and for the ICE tests' folder.
ICE_RE_CFLAGS := $(shell pkg-config --cflags libre) -DHAVE_INTTYPES_H -DHAVE_STDBOOL_H -DHAVE_INET6
ICE_CFLAGS_BEFORE := $(CFLAGS_client_)
CFLAGS_client_ += $(filter-out $(ICE_CFLAGS_BEFORE),$(ICE_RE_CFLAGS))
CFLAGS_tests_client_ice_ += $(ICE_RE_CFLAGS)
CLIENT_ICE_OBJS := $(BUILD)/client/ice.o $(BUILD)/client/ice_base.o $(BUILD)/client/udp_batch.o \
	$(BUILD)/client/ice_check.o $(BUILD)/client/ice_desc.o \
	$(BUILD)/client/turn_tcp.o
CLIENT_ICE_LIBS := $(shell pkg-config --libs libre) -lssl -lcrypto -lpthread
ICE_TEST   := $(BIN)/ice-test
ICE_DRIVER := $(BIN)/ice-driver
TEST_PROGRAMS += $(ICE_TEST) $(ICE_DRIVER)

$(ICE_TEST): $(BUILD)/tests/client/ice/ice_test.o $(CLIENT_ICE_OBJS) $(BUILD)/common/log.o
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_ICE_LIBS)

$(ICE_DRIVER): $(BUILD)/tests/client/ice/ice_driver.o $(CLIENT_ICE_OBJS) \
	$(BUILD)/signaling/keys.o $(BUILD)/signaling/auth.o $(BUILD)/common/log.o
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_ICE_LIBS)

.PHONY: test-ice
# The unit tests (description parser, two sessions on loopback), then the
# netlab scenarios against $(BIN)/coordinator (needs root):
#   make test-ice ICE_TESTS="eim dead"    some scenarios only
ICE_TESTS ?=
test-ice: $(ICE_TEST) $(ICE_DRIVER) $(BIN)/coordinator
	$(Q)$(ICE_TEST)
	$(Q)NETLAB_BIN=$(abspath $(BIN)) bash tests/client/ice/t-ice.sh $(ICE_TESTS)

# --- Signaling client and negotiation: client/sigclient.c, client/sig_http.c,
# client/sig_parse.c, client/negotiate.c and their tests in
# tests/client/signaling/ (signaling engineer's block) ---
#   make test-signaling                         every test (state machine,
#                                               model runs, parsers, and the
#                                               client against bin/coordinator)
#   make test-signaling SIG_TESTS="sim_both_restart_x20 live_*"  some (globs)
#   make fuzz-signaling                         libFuzzer over the parsers
# libre's headers need the defines libre is built with (re.mk); added to
# client/ only where another block has not added them already.
SIG_RE_CFLAGS := $(shell pkg-config --cflags libre) -DHAVE_INTTYPES_H -DHAVE_STDBOOL_H -DHAVE_INET6
SIG_RE_MISSING := $(filter-out $(CFLAGS_client_),$(SIG_RE_CFLAGS))
CFLAGS_client_ += $(SIG_RE_MISSING)
CFLAGS_tests_client_signaling_ += $(SIG_RE_CFLAGS)

CLIENT_SIG_SRCS := client/sig_http.c client/sig_parse.c client/sigclient.c client/negotiate.c
CLIENT_SIG_OBJS := $(CLIENT_SIG_SRCS:%.c=$(BUILD)/%.o)
CLIENT_SIG_LIBS := -lre -ljansson -lssl -lcrypto -lpthread

SIG_TEST := $(BIN)/signaling-test
SIG_TEST_OBJS := $(addprefix $(BUILD)/tests/client/signaling/, \
	sig_test.o test_neg.o neg_sim.o test_sim.o test_parse.o test_live.o)
TEST_PROGRAMS += $(SIG_TEST)

$(SIG_TEST): $(SIG_TEST_OBJS) $(CLIENT_SIG_OBJS) $(SIGNALING_CORE_OBJS) $(COMMON_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CLIENT_SIG_LIBS)

.PHONY: test-signaling fuzz-signaling
test-signaling: $(SIG_TEST) $(BIN)/coordinator
	$(Q)ASAN_OPTIONS=detect_leaks=1$${ASAN_OPTIONS:+:$$ASAN_OPTIONS} \
		$(SIG_TEST) --coordinator-bin $(BIN)/coordinator $(SIG_TESTS)

# libFuzzer (clang) over the HTTP response parser, the poll, list, TURN
# and error answer parsers and the negotiation's payload decoders; built
# apart from the project's objects (SIG_FUZZ_SECONDS, default 30).
SIG_FUZZ_DIR := $(BUILD)/sigfuzz
SIG_FUZZ_BIN := $(SIG_FUZZ_DIR)/fuzz_sig
SIG_FUZZ_SECONDS ?= 30
SIG_FUZZ_SRCS := tests/client/signaling/fuzz_sig.c client/sig_http.c client/sig_parse.c client/negotiate.c \
	signaling/keys.c signaling/auth.c signaling/wire.c common/log.c common/strmap.c

$(SIG_FUZZ_BIN): $(SIG_FUZZ_SRCS) client/sig_http.h client/sig_priv.h client/negotiate.h
	$(call say,FUZZLD,$@)
	$(Q)mkdir -p $(SIG_FUZZ_DIR)/corpus $(SIG_FUZZ_DIR)/artifacts
	$(Q)clang $(CPPFLAGS) $(SIG_RE_CFLAGS) -O1 -g -std=c11 $(WARN) -Wno-format-nonliteral \
		-fsanitize=address,undefined,fuzzer -fno-sanitize-recover=undefined \
		-o $@ $(SIG_FUZZ_SRCS) $(CLIENT_SIG_LIBS)

fuzz-signaling: $(SIG_FUZZ_BIN)
	$(Q)$(SIG_FUZZ_BIN) -max_total_time=$(SIG_FUZZ_SECONDS) -max_len=70000 \
		-artifact_prefix=$(SIG_FUZZ_DIR)/artifacts/ $(SIG_FUZZ_DIR)/corpus \
		tests/client/signaling/corpus

# --- Data-path I/O: client/udp_batch.c (UDP GSO/GRO, sendmmsg) and
# client/hrtimer.c (timerfd on libre's loop), tests in tests/client/udpio/
# (data-path tests' block; loopback only, no root) ---
#   make test-udpio                                     every test
#   make test-udpio UDPIO_TESTS="gro_split hrtimer_cancel"  some
UDPIO_RE_CFLAGS := $(shell pkg-config --cflags libre) -DHAVE_INTTYPES_H -DHAVE_STDBOOL_H -DHAVE_INET6
UDPIO_RE_MISSING := $(filter-out $(CFLAGS_client_),$(UDPIO_RE_CFLAGS))
CFLAGS_client_ += $(UDPIO_RE_MISSING)
CFLAGS_tests_client_udpio_ += $(UDPIO_RE_CFLAGS)
UDPIO_OBJS := $(BUILD)/client/udp_batch.o $(BUILD)/client/hrtimer.o
UDPIO_LIBS := $(shell pkg-config --libs libre) -lssl -lcrypto -lpthread
UDPIO_TEST := $(BIN)/udpio-test
UDPIO_TEST_OBJS := $(addprefix $(BUILD)/tests/client/udpio/, \
	udpio_test.o test_batch.o test_hrtimer.o)
TEST_PROGRAMS += $(UDPIO_TEST)

$(UDPIO_TEST): $(UDPIO_TEST_OBJS) $(UDPIO_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(UDPIO_LIBS)

.PHONY: test-udpio
test-udpio: $(UDPIO_TEST)
	$(Q)$(UDPIO_TEST) $(UDPIO_TESTS)

# --- mesh-client program: client/main.c, client/options.c, client/link.c,
# client/admin.c, client/status.c and the end-to-end tests in
# tests/client/e2e/ (operations/integration block). Keep this block last:
# the program links every CLIENT_*_OBJS defined above it. ---
#   make test-client-e2e                              every scenario (root)
#   make test-client-e2e E2E_TESTS="direct restart"   some
APP_RE_CFLAGS := $(shell pkg-config --cflags libre) -DHAVE_INTTYPES_H -DHAVE_STDBOOL_H -DHAVE_INET6
APP_RE_MISSING := $(filter-out $(CFLAGS_client_),$(APP_RE_CFLAGS))
CFLAGS_client_ += $(APP_RE_MISSING)
CLIENT_APP_OBJS := $(addprefix $(BUILD)/client/, main.o options.o link.o admin.o status.o)
MESH_CLIENT_OBJS := $(CLIENT_APP_OBJS) $(sort $(foreach v,$(filter-out CLIENT_APP_OBJS,\
	$(filter CLIENT_%_OBJS,$(.VARIABLES))),$($(v))))
MESH_CLIENT_LIBS := $(shell pkg-config --libs libngtcp2_crypto_gnutls libngtcp2 gnutls libre) \
	-ljansson -lssl -lcrypto -lpthread
MESH_CLIENT := $(BIN)/mesh-client
PROGRAMS += $(MESH_CLIENT)

$(MESH_CLIENT): $(MESH_CLIENT_OBJS) $(SIGNALING_CORE_OBJS) $(COMMON_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(MESH_CLIENT_LIBS)

.PHONY: test-client-e2e
E2E_TESTS ?=
test-client-e2e: $(MESH_CLIENT) $(BIN)/coordinator $(BIN)/meshreq $(BIN)/netlab-delayd
	$(Q)NETLAB_BIN=$(abspath $(BIN)) bash tests/client/e2e/run.sh $(E2E_TESTS)
