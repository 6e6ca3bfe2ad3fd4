# Top-level build: every folder contributes a module.mk fragment that lists
# its objects; this file owns flags, the generic rules and the phony targets.
# `make V=1` shows full command lines; `make SAN=1` builds with ASan+UBSan
# into build/san (binaries in build/san/bin).

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
V       ?= 0
SAN     ?= 0

ifeq ($(SAN),1)
BUILD   ?= build/san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   ?= build/rel
SANFLAGS =
endif
BIN     ?= $(if $(filter 1,$(SAN)),$(BUILD)/bin,bin)

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN     = -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter -Wno-missing-field-initializers
CPPFLAGS = -I. -D_GNU_SOURCE -DMESH_VERSION='"$(VERSION)"'
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 $(WARN) -MMD -MP -fno-strict-aliasing $(SANFLAGS)
LDFLAGS += $(SANFLAGS)

ifeq ($(V),1)
Q =
say =
else
Q = @
say = @printf '  %-6s %s\n' $(1) $(2);
endif

# Filled by the module fragments.
PROGRAMS  :=
TEST_PROGRAMS :=
FUZZ_TARGETS :=
CLEAN_EXTRA :=

include common/module.mk
include signaling/module.mk
include relay/module.mk
include ha/module.mk
include coordinator/module.mk
include client/module.mk
include bench/module.mk
include tests/module.mk

.PHONY: all deps check-deps test test-unit asan fuzz run demo clean install
.DEFAULT_GOAL := all

all: $(PROGRAMS)

$(BUILD)/%.o: %.c
	$(call say,CC,$<)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(CFLAGS_$(subst /,_,$(dir $<))) -c -o $@ $<

deps:
	$(Q)bash scripts/deps.sh

check-deps:
	$(Q)bash scripts/deps.sh --check

run demo: all
	$(Q)bash scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build bin $(CLEAN_EXTRA)

-include $(shell find build -name '*.d' 2>/dev/null)

# Every test program, built without running anything.
.PHONY: tests-build
tests-build: $(TEST_PROGRAMS) $(BENCH_PROGRAMS)
