/* Command-line and environment option parsing shared by both programs:
 * --foo-bar also reads MESH_FOO_BAR, the command line wins, --help and
 * --version are built in, every error names the option. */
#ifndef MESH_COMMON_OPTS_H
#define MESH_COMMON_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A parser stores the parsed value into dst and returns 0, or returns -1
 * after writing a short reason ("must be 1..65535") into err. */
typedef int (*opt_parse_fn)(const char *val, void *dst, char *err, size_t errlen);

struct opt {
	const char *name;    /* without the leading dashes: "http-port" */
	const char *metavar; /* NULL for a flag */
	const char *def;     /* default shown in --help and parsed when unset; NULL: none */
	const char *help;
	opt_parse_fn parse;  /* NULL for a flag (dst is a bool) */
	void *dst;
	bool required;
};

enum opts_result { OPTS_OK = 0, OPTS_EXIT_OK = 1, OPTS_EXIT_USAGE = 2 };

/* Parses argv[first..argc) against the table. Prints --help/--version
 * output to stdout (OPTS_EXIT_OK) or one error line to stderr
 * (OPTS_EXIT_USAGE). usage is printed above the option list. */
enum opts_result opts_parse(const struct opt *table, size_t n, int argc,
			    char **argv, int first, const char *prog,
			    const char *usage);

/* Ready-made parsers. */
int opt_parse_string(const char *val, void *dst, char *err, size_t errlen);   /* const char ** (points into argv/env: no copy) */
int opt_parse_port(const char *val, void *dst, char *err, size_t errlen);     /* uint16_t *, 1..65535 */
int opt_parse_port0(const char *val, void *dst, char *err, size_t errlen);    /* uint16_t *, 0..65535 */
int opt_parse_seconds(const char *val, void *dst, char *err, size_t errlen);  /* unsigned *, 1..86400 */
int opt_parse_ipaddr(const char *val, void *dst, char *err, size_t errlen);   /* const char ** numeric IPv4/IPv6 */
int opt_parse_loglevel(const char *val, void *dst, char *err, size_t errlen); /* applies log_set_level */
int opt_parse_logformat(const char *val, void *dst, char *err, size_t errlen);/* applies log_set_format */

#endif
