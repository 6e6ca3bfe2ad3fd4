# bench: the signaling load generator and its driver script (see the
# top-level Makefile). Not part of `all`: `make bench` builds the
# coordinator and loadgen, then bench/run.sh starts a coordinator on
# loopback and measures it.
BENCH_SRCS := bench/loadgen.c
BENCH_OBJS := $(BENCH_SRCS:%.c=$(BUILD)/%.o)
BENCH_PROGRAMS := $(BIN)/loadgen

$(BIN)/loadgen: $(BENCH_OBJS) $(SIGNALING_CORE_OBJS) $(COMMON_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ -ljansson -lcrypto -lpthread

.PHONY: bench bench-build
bench-build: $(BENCH_PROGRAMS)

bench: $(BIN)/coordinator $(BENCH_PROGRAMS)
	$(Q)BIN=$(BIN) bash bench/run.sh

# --- mesh-client benchmark (bench/mesh-bench.sh, docs/benchmarks.md) ---
# `make bench-mesh` (root): a coordinator and two mesh-clients in netlab
# namespaces; TCP throughput and UDP round-trip time through the mesh
# against the same path without it, and time to link up.
$(BIN)/udp-rtt: $(BUILD)/bench/udp_rtt.o
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^

.PHONY: bench-mesh
bench-mesh: $(BIN)/coordinator $(BIN)/mesh-client $(BIN)/meshreq $(BIN)/udp-rtt
	$(Q)NETLAB_BIN=$(BIN) BIN=$(BIN) bash bench/mesh-bench.sh
