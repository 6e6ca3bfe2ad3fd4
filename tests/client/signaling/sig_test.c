/* The signaling tests (client/sigclient.c, client/sig_http.c,
 * client/negotiate.c): one binary with a table of named tests. Prints
 * "ok - name" / "not ok - name" and "N passed, M failed".
 *   signaling-test [-v] [--coordinator-bin PATH] [NAME-or-GLOB...]
 *   signaling-test -l        lists the names
 * Tests named live_* start bin/coordinator on 127.0.0.1 only. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <re_types.h>
#include <re_fmt.h>
#include <re_main.h>
#include <re_mem.h>

#include "common/log.h"
#include "tests/client/signaling/sigtest.h"

int g_checks_failed;
const char *g_test;
bool g_verbose;
const char *g_coord_bin = "bin/coordinator";

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "neg_alloc_bounds", t_neg_alloc_bounds },
	{ "neg_payloads", t_neg_payloads },
	{ "neg_controlling_start", t_neg_controlling_start },
	{ "neg_controlled_start", t_neg_controlled_start },
	{ "neg_stale_ignored", t_neg_stale_ignored },
	{ "neg_reneg_rules", t_neg_reneg_rules },
	{ "neg_publish_stale", t_neg_publish_stale },
	{ "neg_bye", t_neg_bye },
	{ "neg_failure_pacing", t_neg_failure_pacing },
	{ "neg_restart_detection", t_neg_restart_detection },
	{ "sim_normal_start", t_sim_normal_start },
	{ "sim_controlled_restart", t_sim_controlled_restart },
	{ "sim_controlling_restart", t_sim_controlling_restart },
	{ "sim_both_restart_x20", t_sim_both_restart_x20 },
	{ "sim_both_restart_skew", t_sim_both_restart_skew },
	{ "sim_lossy", t_sim_lossy },
	{ "sim_bad_psig", t_sim_bad_psig },
	{ "sim_stale_epoch", t_sim_stale_epoch },
	{ "sim_graceful_stop", t_sim_graceful_stop },
	{ "sim_path_failure", t_sim_path_failure },
	{ "sim_model_random", t_sim_model_random },
	{ "http_parser", t_http_parser },
	{ "http_parser_split", t_http_parser_split },
	{ "http_url", t_http_url },
	{ "poll_parse", t_poll_parse },
	{ "list_turn_error_parse", t_list_turn_error_parse },
	{ "publish_build", t_publish_build },
	{ "msg_check", t_msg_check },
	{ "dedupe", t_dedupe },
	{ "live_roundtrip", t_live_roundtrip },
	{ "live_cursor_ack", t_live_cursor_ack },
	{ "live_bad_psig", t_live_bad_psig },
	{ "live_stale_epoch", t_live_stale_epoch },
	{ "live_servers", t_live_servers },
	{ "live_failover", t_live_failover },
	{ "live_negotiate", t_live_negotiate },
	{ "live_ha", t_live_ha },
	{ "live_ha_late_registry", t_live_ha_late_registry },
	{ "live_servers_unreachable", t_live_servers_unreachable },
};

static bool wanted(const char *name, int argc, char **argv, int first)
{
	if (first >= argc)
		return true;
	for (int i = first; i < argc; i++) {
		if (!fnmatch(argv[i], name, 0))
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, first = 1;
	size_t n = sizeof(tests) / sizeof(tests[0]);

	while (first < argc && argv[first][0] == '-') {
		if (!strcmp(argv[first], "-v")) {
			g_verbose = true;
			first++;
		} else if (!strcmp(argv[first], "-l")) {
			for (size_t i = 0; i < n; i++)
				printf("%s\n", tests[i].name);
			return 0;
		} else if (!strcmp(argv[first], "--coordinator-bin") && first + 1 < argc) {
			g_coord_bin = argv[first + 1];
			first += 2;
		} else {
			fprintf(stderr, "usage: %s [-v] [-l] [--coordinator-bin PATH] [NAME...]\n", argv[0]);
			return 2;
		}
	}
	(void)log_set_level(g_verbose ? "debug" : "error");
	if (libre_init()) {
		fprintf(stderr, "libre_init failed\n");
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!wanted(tests[i].name, argc, argv, first))
			continue;
		g_test = tests[i].name;
		g_checks_failed = 0;
		tests[i].fn();
		if (g_checks_failed) {
			printf("not ok - %s\n", tests[i].name);
			failed++;
		} else {
			printf("ok - %s\n", tests[i].name);
			passed++;
		}
		fflush(stdout);
	}
	libre_close();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
