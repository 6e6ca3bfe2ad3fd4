# common/: logger and option parsing used by both programs.
COMMON_SRCS := common/log.c common/opts.c common/strmap.c
COMMON_OBJS := $(COMMON_SRCS:%.c=$(BUILD)/%.o)
