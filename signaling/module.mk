# signaling/: the wire format shared by coordinator and client (keys,
# authentication, message bodies) and the coordinator's broker with its
# in-memory mailbox backend.
SIGNALING_CORE_SRCS := signaling/keys.c signaling/auth.c signaling/wire.c
SIGNALING_CORE_OBJS := $(SIGNALING_CORE_SRCS:%.c=$(BUILD)/%.o)

BROKER_SRCS := signaling/broker.c signaling/http_guard.c signaling/metrics.c \
	signaling/ratelimit.c signaling/mailbox_mem.c signaling/replay_mem.c
BROKER_OBJS := $(BROKER_SRCS:%.c=$(BUILD)/%.o)
