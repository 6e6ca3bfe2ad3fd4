/* Option parsing for both programs: a table of options, each filled from
 * its default, then MESH_<NAME> in the environment, then the command line.
 * Owns only the parse; must not keep state between calls or exit. */
#include "common/opts.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static void env_name(const char *opt, char *out, size_t cap)
{
	size_t pos = 0;
	const char prefix[] = "MESH_";
	for (size_t i = 0; prefix[i] && pos + 1 < cap; i++)
		out[pos++] = prefix[i];
	for (; *opt && pos + 1 < cap; opt++)
		out[pos++] = *opt == '-' ? '_' : (char)toupper((unsigned char)*opt);
	out[pos] = '\0';
}

static int parse_flag_text(const char *val, bool *dst)
{
	if (!strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "on"))
		*dst = true;
	else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no") || !strcmp(val, "off") || !*val)
		*dst = false;
	else
		return -1;
	return 0;
}

static int apply(const struct opt *o, const char *val, const char *prog, const char *source)
{
	char err[160] = "";
	if (!o->parse) {
		if (parse_flag_text(val, o->dst) == 0)
			return 0;
		fprintf(stderr, "%s: --%s (from %s): expected true or false, got \"%s\"\n",
			prog, o->name, source, val);
		return -1;
	}
	if (o->parse(val, o->dst, err, sizeof(err)) == 0)
		return 0;
	fprintf(stderr, "%s: --%s%s%s: %s (got \"%s\")\n", prog, o->name,
		source[0] ? " from " : "", source, err, val);
	return -1;
}

static void print_help(const struct opt *table, size_t n, const char *prog, const char *usage)
{
	printf("Usage: %s %s\n\nOptions (each also read from MESH_<NAME>; the command line wins):\n",
	       prog, usage);
	for (size_t i = 0; i < n; i++) {
		const struct opt *o = &table[i];
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "",
			 o->metavar ? o->metavar : "");
		printf("  %-28s %s", left, o->help);
		if (o->required)
			printf(" (required)");
		else if (o->def)
			printf(" [default: %s]", o->def);
		printf("\n");
	}
	printf("  %-28s %s\n  %-28s %s\n", "--help", "print this help and exit",
	       "--version", "print the version and exit");
}

static const struct opt *find(const struct opt *table, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(table[i].name) == len && !strncmp(table[i].name, name, len))
			return &table[i];
	return NULL;
}

enum opts_result opts_parse(const struct opt *table, size_t n, int argc, char **argv,
			    int first, const char *prog, const char *usage)
{
	for (int i = first; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			print_help(table, n, prog, usage);
			return OPTS_EXIT_OK;
		}
		if (!strcmp(argv[i], "--version")) {
			printf("%s %s\n", prog, MESH_VERSION);
			return OPTS_EXIT_OK;
		}
	}

	bool seen[n ? n : 1];
	memset(seen, 0, sizeof(seen));

	for (size_t i = 0; i < n; i++)
		if (table[i].def && apply(&table[i], table[i].def, prog, "default"))
			return OPTS_EXIT_USAGE;

	for (size_t i = 0; i < n; i++) {
		char env[96];
		env_name(table[i].name, env, sizeof(env));
		const char *val = getenv(env);
		if (!val)
			continue;
		if (apply(&table[i], val, prog, env))
			return OPTS_EXIT_USAGE;
		seen[i] = true;
	}

	for (int i = first; i < argc; i++) {
		const char *arg = argv[i];
		if (strncmp(arg, "--", 2) != 0 || !arg[2]) {
			fprintf(stderr, "%s: unexpected argument \"%s\" (see --help)\n", prog, arg);
			return OPTS_EXIT_USAGE;
		}
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct opt *o = find(table, n, name, len);
		if (!o) {
			fprintf(stderr, "%s: unknown option --%.*s (see --help)\n", prog, (int)len, name);
			return OPTS_EXIT_USAGE;
		}
		const char *val;
		if (eq) {
			val = eq + 1;
		} else if (!o->metavar) {
			val = "true";
		} else {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: --%s needs a value (%s)\n", prog, o->name, o->metavar);
				return OPTS_EXIT_USAGE;
			}
			val = argv[++i];
		}
		if (apply(o, val, prog, ""))
			return OPTS_EXIT_USAGE;
		seen[o - table] = true;
	}

	for (size_t i = 0; i < n; i++) {
		if (table[i].required && !seen[i]) {
			char env[96];
			env_name(table[i].name, env, sizeof(env));
			fprintf(stderr, "%s: --%s is required (or set %s)\n", prog, table[i].name, env);
			return OPTS_EXIT_USAGE;
		}
	}
	return OPTS_OK;
}

int opt_parse_string(const char *val, void *dst, char *err, size_t errlen)
{
	if (!*val) {
		snprintf(err, errlen, "must not be empty");
		return -1;
	}
	*(const char **)dst = val;
	return 0;
}

static int parse_uint(const char *val, unsigned long min, unsigned long max, unsigned long *out)
{
	if (!*val || !isdigit((unsigned char)*val))
		return -1;
	char *end;
	errno = 0;
	unsigned long v = strtoul(val, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int opt_parse_port(const char *val, void *dst, char *err, size_t errlen)
{
	unsigned long v;
	if (parse_uint(val, 1, 65535, &v)) {
		snprintf(err, errlen, "must be a port 1..65535");
		return -1;
	}
	*(uint16_t *)dst = (uint16_t)v;
	return 0;
}

int opt_parse_port0(const char *val, void *dst, char *err, size_t errlen)
{
	unsigned long v;
	if (parse_uint(val, 0, 65535, &v)) {
		snprintf(err, errlen, "must be a port 0..65535");
		return -1;
	}
	*(uint16_t *)dst = (uint16_t)v;
	return 0;
}

int opt_parse_seconds(const char *val, void *dst, char *err, size_t errlen)
{
	unsigned long v;
	if (parse_uint(val, 1, 86400, &v)) {
		snprintf(err, errlen, "must be a number of seconds 1..86400");
		return -1;
	}
	*(unsigned *)dst = (unsigned)v;
	return 0;
}

int opt_parse_ipaddr(const char *val, void *dst, char *err, size_t errlen)
{
	unsigned char buf[16];
	if (inet_pton(AF_INET, val, buf) != 1 && inet_pton(AF_INET6, val, buf) != 1) {
		snprintf(err, errlen, "must be a numeric IPv4 or IPv6 address");
		return -1;
	}
	*(const char **)dst = val;
	return 0;
}

int opt_parse_loglevel(const char *val, void *dst, char *err, size_t errlen)
{
	if (log_set_level(val)) {
		snprintf(err, errlen, "must be error, warn, info or debug");
		return -1;
	}
	*(const char **)dst = val;
	return 0;
}

int opt_parse_logformat(const char *val, void *dst, char *err, size_t errlen)
{
	if (log_set_format(val)) {
		snprintf(err, errlen, "must be text or json");
		return -1;
	}
	*(const char **)dst = val;
	return 0;
}
