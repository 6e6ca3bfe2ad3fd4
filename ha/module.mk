# ha/: the Redis mailbox and replay store, Sentinel failover and the
# coordinator registry (ha.h); linked into bin/coordinator by
# coordinator/module.mk through HA_OBJS and HA_LIBS.
#   make test-ha        unit tests against a private redis-server, then the
#                       conformance suite against the Redis mailbox (one
#                       coordinator, then two sharing one Redis)
#   make test-ha-unit   only the unit tests (no coordinator needed)
#   make test-ha-cluster  three coordinator hosts in namespaces (root):
#                       failover, host loss, partition, registry
#   make bench-ha       memory vs Redis throughput and wake latency

HA_SRCS := ha/ha.c ha/rconn.c ha/sentinel.c ha/scripts.c ha/redis_url.c \
	ha/mailbox_redis.c ha/replay_redis.c ha/registry.c ha/reply_parse.c
HA_OBJS := $(HA_SRCS:%.c=$(BUILD)/%.o)
HA_LIBS := -lhiredis -ljansson -levent -lcrypto -lpthread

HA_TEST := $(BIN)/ha-test
HA_TEST_OBJS := $(BUILD)/tests/ha/ha_test.o

TEST_PROGRAMS += $(HA_TEST)

$(HA_TEST): $(HA_TEST_OBJS) $(HA_OBJS) $(BUILD)/signaling/mailbox_mem.o $(SIGNALING_CORE_OBJS) $(COMMON_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(HA_LIBS)

.PHONY: test-ha test-ha-unit test-ha-conformance test-ha-cluster bench-ha

test-ha-unit: $(HA_TEST)
	$(Q)BIN=$(BIN) bash tests/ha/unit.sh

test-ha-conformance: $(BIN)/coordinator $(BIN)/conformance $(BIN)/meshreq
	$(Q)BIN=$(BIN) bash tests/ha/conformance.sh

test-ha: test-ha-unit test-ha-conformance

test-ha-cluster: $(BIN)/coordinator $(BIN)/meshreq
	$(Q)BIN=$(BIN) NETLAB_BIN=$(abspath $(BIN)) timeout -k 15 600 bash tests/ha/cluster.sh

bench-ha: $(BIN)/coordinator $(BIN)/meshreq $(BIN)/loadgen
	$(Q)BIN=$(BIN) bash tests/ha/bench.sh
