# coordinator/: the coordinator program (options and process lifetime).
COORDINATOR_SRCS := coordinator/main.c coordinator/config.c
COORDINATOR_OBJS := $(COORDINATOR_SRCS:%.c=$(BUILD)/%.o)

$(BIN)/coordinator: $(COORDINATOR_OBJS) $(BROKER_OBJS) $(SIGNALING_CORE_OBJS) $(COMMON_OBJS) $(RELAY_OBJS) $(HA_OBJS) $(RELAY_DEPS)
	$(call say,LD,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(RELAY_LIBS) $(HA_LIBS) -levent_pthreads -levent -ljansson -lssl -lcrypto -lpthread

PROGRAMS += $(BIN)/coordinator
