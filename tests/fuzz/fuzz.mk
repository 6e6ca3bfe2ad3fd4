# tests/fuzz/: libFuzzer targets over the real parsers (each harness links
# the real objects, or #includes the .c for a static parser, and stubs only
# I/O). Included from tests/module.mk. The project's objects are built with
# $(CC); these are built again with clang (libFuzzer + ASan + UBSan) into
# $(BUILD)/fuzz/, binaries in $(BUILD)/fuzz/bin. Owns only these targets:
#   make fuzz                 each target for FUZZ_SECONDS (default 60)
#   make fuzz-ci              each target for 10 s
#   make fuzz FUZZ_NAMES=fuzz_publish FUZZ_SECONDS=600
#   make fuzz-build           build only
# Seeds live in tests/fuzz/corpus/<target>/ (read-only to the fuzzer); new
# inputs go to $(BUILD)/fuzz/corpus/<target>/, crashes to
# $(BUILD)/fuzz/artifacts/<target>-*. Reproduce one with
#   $(BUILD)/fuzz/bin/<target> <crash file>

FUZZ_CC   ?= clang
FUZZ_DIR  := $(BUILD)/fuzz
FUZZ_BIN  := $(FUZZ_DIR)/bin
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# clang's -Wformat=2 also flags vsnprintf(fmt) inside a va_list wrapper
# (common/log.c), which gcc accepts; that one warning is off here.
FUZZ_CFLAGS  := -O1 -g -std=c11 $(WARN) -Wno-format-nonliteral -MMD -MP -fno-strict-aliasing \
	$(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LDFLAGS := $(FUZZ_SAN) -fsanitize=fuzzer
FUZZ_LIBS    := -levent -ljansson -lssl -lcrypto -lpthread

FUZZ_ALL_NAMES := fuzz_publish fuzz_auth_header fuzz_secret fuzz_cursor fuzz_redis_reply
FUZZ_NAMES     ?= $(FUZZ_ALL_NAMES)
FUZZ_SECONDS   ?= 60
FUZZ_CI_SECONDS ?= 10

# -max_len per target: above each input's own bound, so the bound itself
# is exercised (publish body 65536, Authorization 256, secret file 4096,
# poll query: a cursor is under 48 bytes; Redis replies: a stored entry
# is a header of at most 164 bytes and 16384 payload bytes).
FUZZ_MAXLEN_fuzz_publish     := 66000
FUZZ_MAXLEN_fuzz_auth_header := 512
FUZZ_MAXLEN_fuzz_secret      := 4200
FUZZ_MAXLEN_fuzz_cursor      := 256
FUZZ_MAXLEN_fuzz_redis_reply := 17000

FUZZ_CORE := $(FUZZ_DIR)/common/log.o $(FUZZ_DIR)/common/strmap.o \
	$(FUZZ_DIR)/signaling/keys.o $(FUZZ_DIR)/signaling/auth.o $(FUZZ_DIR)/signaling/wire.o
# fuzz_cursor compiles broker.c into the harness, so it links the rest of
# the broker's objects but not broker.o.
FUZZ_BROKER_REST := $(patsubst $(BUILD)/%,$(FUZZ_DIR)/%,$(filter-out %/broker.o,$(BROKER_OBJS)))

$(FUZZ_DIR)/%.o: %.c
	$(call say,FUZZCC,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BIN)/fuzz_publish: $(FUZZ_DIR)/tests/fuzz/fuzz_publish.o $(FUZZ_CORE)
$(FUZZ_BIN)/fuzz_auth_header: $(FUZZ_DIR)/tests/fuzz/fuzz_auth_header.o $(FUZZ_CORE)
$(FUZZ_BIN)/fuzz_secret: $(FUZZ_DIR)/tests/fuzz/fuzz_secret.o $(FUZZ_CORE)
$(FUZZ_BIN)/fuzz_cursor: $(FUZZ_DIR)/tests/fuzz/fuzz_cursor.o $(FUZZ_BROKER_REST) $(FUZZ_CORE)
# fuzz_redis_reply compiles ha/reply_parse.c into the harness.
$(FUZZ_BIN)/fuzz_redis_reply: $(FUZZ_DIR)/tests/fuzz/fuzz_redis_reply.o $(FUZZ_CORE)

$(FUZZ_ALL_NAMES:%=$(FUZZ_BIN)/%):
	$(call say,FUZZLD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $@ $^ $(FUZZ_LIBS)

FUZZ_TARGETS += $(FUZZ_ALL_NAMES:%=$(FUZZ_BIN)/%)

# $(call fuzz_run,target,seconds): one run, failing on the first crash.
define fuzz_run
@echo "== $(1): $(2) s"
$(Q)mkdir -p $(FUZZ_DIR)/corpus/$(1) $(FUZZ_DIR)/artifacts
$(Q)ASAN_OPTIONS=detect_leaks=1$${ASAN_OPTIONS:+:$$ASAN_OPTIONS} $(FUZZ_BIN)/$(1) \
	-max_total_time=$(2) -max_len=$(FUZZ_MAXLEN_$(1)) -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/$(1)- \
	$(if $(wildcard tests/fuzz/$(1).dict),-dict=tests/fuzz/$(1).dict) \
	$(FUZZ_DIR)/corpus/$(1) tests/fuzz/corpus/$(1)

endef

.PHONY: fuzz fuzz-ci fuzz-build
fuzz-build: $(FUZZ_NAMES:%=$(FUZZ_BIN)/%)

fuzz: fuzz-build
	$(foreach t,$(FUZZ_NAMES),$(call fuzz_run,$(t),$(FUZZ_SECONDS)))

fuzz-ci: fuzz-build
	$(foreach t,$(FUZZ_NAMES),$(call fuzz_run,$(t),$(FUZZ_CI_SECONDS)))
