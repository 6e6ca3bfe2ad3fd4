# tests/unit/: the unit-test binary $(BIN)/unit-tests (a table of named
# tests per module, see tests/unit/main.c). Included from tests/module.mk;
# uses the top-level generic rule $(BUILD)/%.o: %.c and links the real
# objects under test. Owns only this program and the test-unit target.
#   make test-unit                          every test
#   make test-unit UNIT_TESTS='mailbox_*'   some of them (names: unit-tests -l)
#   make SAN=1 test-unit                    the same under ASan+UBSan+LSan

UNIT_TESTS_BIN := $(BIN)/unit-tests
UNIT_SRCS := tests/unit/main.c tests/unit/test_keys.c tests/unit/test_auth.c \
	tests/unit/test_wire.c tests/unit/test_replay.c tests/unit/test_ratelimit.c \
	tests/unit/test_mailbox.c tests/unit/test_strmap.c tests/unit/test_opts.c
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/%.o)
# The parts of the broker's object list that are under test (not the
# HTTP front end).
UNIT_SUT_OBJS := $(BUILD)/signaling/mailbox_mem.o $(BUILD)/signaling/replay_mem.o \
	$(BUILD)/signaling/ratelimit.o $(SIGNALING_CORE_OBJS) $(COMMON_OBJS)
UNIT_LIBS := -levent_pthreads -levent -ljansson -lssl -lcrypto -lpthread

$(UNIT_TESTS_BIN): $(UNIT_OBJS) $(UNIT_SUT_OBJS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(UNIT_LIBS)

TEST_PROGRAMS += $(UNIT_TESTS_BIN)

UNIT_TESTS ?=
.PHONY: test-unit
test-unit: $(UNIT_TESTS_BIN)
	$(Q)set -f; ASAN_OPTIONS=detect_leaks=1$${ASAN_OPTIONS:+:$$ASAN_OPTIONS} $(UNIT_TESTS_BIN) $(UNIT_TESTS)
