# relay/: the embedded coturn 4.6.1 STUN/TURN server.
#
# coturn is built from the upstream tarball (third_party/, fetched by
# `make deps`) into $(BUILD)/relay/libcoturn.a: the sources are extracted
# into $(BUILD)/coturn-src and compiled with coturn's own relaxed flags
# (-w, never our -Werror), without any database, Prometheus or systemd
# support. Our glue (relay/*.c) is compiled with the project's flags.
#
# Exports for the coordinator's link line:
#   RELAY_OBJS  our relay/*.o
#   RELAY_LIBS  libcoturn.a plus the system libraries it needs
#   RELAY_DEPS  what to list as prerequisites (RELAY_OBJS and the archive)
# Targets: test-turn (the parser's unit test, then tests/turn/t-*.sh
#          against $(BIN)/coordinator), test-turn-unit, relay-driver
#          (tests/turn's standalone driver, for debugging relay/).

COTURN_VERSION := 4.6.1
COTURN_TARBALL := third_party/coturn_$(COTURN_VERSION).orig.tar.gz
COTURN_SRC     := $(BUILD)/coturn-src
COTURN_STAMP   := $(COTURN_SRC)/.extracted
COTURN_OBJDIR  := $(BUILD)/relay/coturn
COTURN_LIB     := $(BUILD)/relay/libcoturn.a

# What turnserver is made of (coturn's Makefile.in: SERVERAPP_MODS,
# IMPL_MODS, SERVERTURN_MODS, COMMON_MODS) minus the database drivers,
# hiredis and Prometheus. The telnet CLI (turn_admin_server.c, libtelnet.c)
# cannot be left out cleanly: netengine.c always starts the admin thread,
# which also carries the session-info plumbing. It is built and switched
# off at run time with --no-cli.
COTURN_FILES := \
	src/apps/relay/mainrelay.c src/apps/relay/netengine.c \
	src/apps/relay/libtelnet.c src/apps/relay/turn_admin_server.c \
	src/apps/relay/userdb.c src/apps/relay/tls_listener.c \
	src/apps/relay/dtls_listener.c src/apps/relay/ns_ioalib_engine_impl.c \
	src/apps/relay/turn_ports.c src/apps/relay/http_server.c \
	src/apps/relay/acme.c src/apps/relay/dbdrivers/dbdriver.c \
	src/server/ns_turn_allocation.c src/server/ns_turn_maps.c \
	src/server/ns_turn_maps_rtcp.c src/server/ns_turn_server.c \
	src/client/ns_turn_ioaddr.c src/client/ns_turn_msg.c \
	src/client/ns_turn_msg_addr.c \
	src/apps/common/apputils.c src/apps/common/ns_turn_utils.c \
	src/apps/common/stun_buffer.c
COTURN_OBJS := $(COTURN_FILES:%.c=$(COTURN_OBJDIR)/%.o)

COTURN_INCDIRS := $(COTURN_SRC)/src $(COTURN_SRC)/src/apps/common \
	$(COTURN_SRC)/src/server $(COTURN_SRC)/src/client \
	$(COTURN_SRC)/src/apps/relay

# The TURN_NO_* switches are the ones coturn's configure and CMakeLists
# emit when a backend is absent. TURN_NO_SCTP: no SCTP listeners.
# TURN_HAS_DAEMON: what configure finds on Linux (daemon() exists; we
# never pass --daemon). INSTALL_PREFIX only feeds the config-file search
# path, which -n switches off.
# relay/coturn_prelude.h is forced first into every coturn file: it
# routes coturn's exit() calls to relay_coturn_exit() and turns coturn's
# SIGUSR2 libevent signal event into an inert event (see the header).
# TURN_LOG_FUNC_IMPL is coturn's own hook for its log sink
# (ns_turn_utils.c): every coturn log line goes to relay_coturn_log().
COTURN_FEATURES := -DTURN_NO_SQLITE -DTURN_NO_PQ -DTURN_NO_MYSQL \
	-DTURN_NO_MONGO -DTURN_NO_HIREDIS -DTURN_NO_PROMETHEUS \
	-DTURN_NO_SYSTEMD -DTURN_NO_SCTP -DTURN_HAS_DAEMON
COTURN_DEFS := -D_GNU_SOURCE $(COTURN_FEATURES) -DINSTALL_PREFIX=/usr/local \
	-DTURN_LOG_FUNC_IMPL=relay_coturn_log
COTURN_CPPFLAGS := $(addprefix -I,$(COTURN_INCDIRS)) $(COTURN_DEFS) \
	-include relay/coturn_prelude.h

# Sanitizers under SAN=1: coturn gets ASan and UBSan like our code, but
# UBSan in report-only mode (-fsanitize-recover): undefined behaviour
# inside coturn is printed as "runtime error:" (tests/turn fail on it)
# instead of aborting the coordinator under everyone's tests for a bug
# that is not ours. Leaks coturn keeps until exit (it has no shutdown)
# are suppressed for its source files only, see coturn_glue.c.
ifeq ($(SAN),1)
COTURN_SANFLAGS ?= -fsanitize=address,undefined -fsanitize-recover=undefined \
	-fno-omit-frame-pointer
else
COTURN_SANFLAGS ?=
endif
COTURN_CFLAGS := -O2 -g -std=gnu11 -w -fno-strict-aliasing -MMD -MP $(COTURN_SANFLAGS)

# $(wildcard): without the tarball the recipe still runs and says what to do.
$(COTURN_STAMP): $(wildcard $(COTURN_TARBALL))
	$(call say,TAR,$(COTURN_TARBALL))
	$(Q)if [ ! -s $(COTURN_TARBALL) ]; then \
		echo "relay: $(COTURN_TARBALL) is missing (run: make deps)" >&2; exit 1; fi
	$(Q)rm -rf $(COTURN_SRC) && mkdir -p $(COTURN_SRC)
	$(Q)tar -xzf $(COTURN_TARBALL) -C $(COTURN_SRC) --strip-components=1
	$(Q)test -f $(COTURN_SRC)/src/apps/relay/mainrelay.c
	$(Q)touch $@

# A change of compiler or flags (SAN=1 vs not, COTURN_SANFLAGS=...) must
# rebuild coturn: the stamp's content is the command line, rewritten only
# when it differs.
COTURN_FLAGS_STAMP := $(COTURN_OBJDIR)/flags
COTURN_FLAGS_NOW = $(CC) $(COTURN_CPPFLAGS) $(COTURN_CFLAGS)
$(COTURN_FLAGS_STAMP): relay-flags-check
	@mkdir -p $(dir $@)
	@echo '$(COTURN_FLAGS_NOW)' | cmp -s - $@ || echo '$(COTURN_FLAGS_NOW)' >$@
.PHONY: relay-flags-check
relay-flags-check:

# The upstream file names main() as coturn_main() so it can run on a thread.
$(COTURN_OBJDIR)/src/apps/relay/mainrelay.o: COTURN_EXTRA := -Dmain=coturn_main

$(COTURN_OBJS): $(COTURN_OBJDIR)/%.o: $(COTURN_STAMP) $(COTURN_FLAGS_STAMP) relay/coturn_prelude.h
	$(call say,CC,coturn/$*.c)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(COTURN_CPPFLAGS) $(COTURN_EXTRA) $(COTURN_CFLAGS) -c -o $@ $(COTURN_SRC)/$*.c

$(COTURN_LIB): $(COTURN_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

# Our side. coturn_glue.c includes coturn's headers, as system headers so
# their warnings do not meet our -Werror.
RELAY_SRCS := relay/relay.c relay/relay_cert.c relay/relay_probe.c \
	relay/stun_probe.c relay/coturn_glue.c relay/openssl3_shim.c
RELAY_OBJS := $(RELAY_SRCS:%.c=$(BUILD)/%.o)
RELAY_LIBS := $(COTURN_LIB) -levent_openssl -levent_pthreads -levent \
	-lssl -lcrypto -lpthread
# What a program linking the relay depends on (use as prerequisites).
RELAY_DEPS := $(RELAY_OBJS) $(COTURN_LIB)

# Same feature switches as the library, so the structures agree.
$(BUILD)/relay/coturn_glue.o: CPPFLAGS += $(addprefix -isystem ,$(COTURN_INCDIRS)) \
	$(COTURN_FEATURES)
$(BUILD)/relay/coturn_glue.o: $(COTURN_STAMP)

# tests/turn: a standalone driver (relay_start without the coordinator)
# and the STUN parser's unit test.
RELAY_DRIVER := $(BUILD)/tests/turn/relay_driver
STUN_PROBE_TEST := $(BUILD)/tests/turn/stun_probe_test

$(RELAY_DRIVER): $(BUILD)/tests/turn/relay_driver.o $(RELAY_OBJS) $(COTURN_LIB) \
		$(BUILD)/common/log.o
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(RELAY_LIBS)

$(STUN_PROBE_TEST): $(BUILD)/tests/turn/stun_probe_test.o $(BUILD)/relay/stun_probe.o
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $^

TEST_PROGRAMS += $(STUN_PROBE_TEST)

.PHONY: relay-driver test-turn test-turn-unit
relay-driver: $(RELAY_DRIVER)

test-turn-unit: $(STUN_PROBE_TEST)
	$(Q)$(STUN_PROBE_TEST)

# tests/turn/t-*.sh start $(BIN)/coordinator on 127.0.0.1 ports
# 17600-17999 and drive Debian's turnutils_* clients; each also runs
# alone (bash tests/turn/t-20-relay-udp.sh), BIN=build/san/bin for SAN=1.
test-turn: $(BIN)/coordinator $(BIN)/meshreq $(STUN_PROBE_TEST)
	$(Q)$(STUN_PROBE_TEST)
	$(Q)BIN=$(BIN) bash tests/turn/run.sh
