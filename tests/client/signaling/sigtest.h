/* The signaling tests' shared harness: the CHECK macro, the test table
 * entry type and every test function of this directory. */
#ifndef MESH_TESTS_SIGTEST_H
#define MESH_TESTS_SIGTEST_H

#include <stdbool.h>
#include <stdio.h>

extern int g_checks_failed;
extern const char *g_test;
extern bool g_verbose;
extern const char *g_coord_bin; /* --coordinator-bin */

#define CHECK(cond) do { if (!(cond)) { \
	g_checks_failed++; \
	printf("#   %s: check failed at %s:%d: %s\n", g_test, __FILE__, __LINE__, #cond); \
} } while (0)

#define CHECKF(cond, ...) do { if (!(cond)) { \
	g_checks_failed++; \
	printf("#   %s: check failed at %s:%d: %s: ", g_test, __FILE__, __LINE__, #cond); \
	printf(__VA_ARGS__); printf("\n"); \
} } while (0)

#define NOTE(...) do { if (g_verbose) { printf("#   "); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* test_neg.c: the state machine, event by event */
void t_neg_alloc_bounds(void);
void t_neg_payloads(void);
void t_neg_controlling_start(void);
void t_neg_controlled_start(void);
void t_neg_stale_ignored(void);
void t_neg_reneg_rules(void);
void t_neg_publish_stale(void);
void t_neg_bye(void);
void t_neg_failure_pacing(void);
void t_neg_restart_detection(void);

/* test_sim.c: two peers in a simulated world */
void t_sim_normal_start(void);
void t_sim_controlled_restart(void);
void t_sim_controlling_restart(void);
void t_sim_both_restart_x20(void);
void t_sim_both_restart_skew(void);
void t_sim_lossy(void);
void t_sim_bad_psig(void);
void t_sim_stale_epoch(void);
void t_sim_graceful_stop(void);
void t_sim_path_failure(void);
void t_sim_model_random(void);

/* test_parse.c: pure parsers and filters */
void t_http_parser(void);
void t_http_parser_split(void);
void t_http_url(void);
void t_poll_parse(void);
void t_list_turn_error_parse(void);
void t_publish_build(void);
void t_msg_check(void);
void t_dedupe(void);

/* test_live.c: sigclient against bin/coordinator on 127.0.0.1 */
void t_live_roundtrip(void);
void t_live_cursor_ack(void);
void t_live_bad_psig(void);
void t_live_stale_epoch(void);
void t_live_servers(void);
void t_live_failover(void);
void t_live_negotiate(void);
void t_live_ha(void);
void t_live_ha_late_registry(void);
void t_live_servers_unreachable(void);

#endif
