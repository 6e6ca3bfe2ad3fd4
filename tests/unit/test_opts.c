/* Tests of common/opts.c: defaults, MESH_<NAME> environment fallback,
 * the command line winning, flag forms, errors (unknown option, missing
 * value, bad value, required missing: exit 2 with one stderr line naming
 * the option), --help/--version, and the ready-made parsers' bounds.
 * stdout and stderr are captured so the runner's output stays clean. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/opts.h"
#include "tests/unit/test.h"

struct cfg {
	uint16_t http_port, tls_port;
	unsigned ttl;
	const char *secret_file, *listen;
	bool ha;
};

#define NOPTS 6

static void table(struct opt t[NOPTS], struct cfg *c)
{
	memset(c, 0, sizeof(*c));
	const struct opt tmpl[NOPTS] = {
		{ "http-port", "N", "7000", "HTTP port", opt_parse_port, &c->http_port, false },
		{ "tls-port", "N", "5349", "TLS port (0: off)", opt_parse_port0, &c->tls_port, false },
		{ "message-ttl", "S", "120", "message TTL", opt_parse_seconds, &c->ttl, false },
		{ "secret-file", "FILE", NULL, "secret", opt_parse_string, &c->secret_file, true },
		{ "listen", "ADDR", "0.0.0.0", "listen address", opt_parse_ipaddr, &c->listen, false },
		{ "ha", NULL, NULL, "HA mode", NULL, &c->ha, false },
	};
	memcpy(t, tmpl, sizeof(tmpl));
}

static void clear_env(void)
{
	static const char *const names[] = { "MESH_HTTP_PORT", "MESH_TLS_PORT", "MESH_MESSAGE_TTL",
					     "MESH_SECRET_FILE", "MESH_LISTEN", "MESH_HA" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unsetenv(names[i]);
}

/* Runs opts_parse over a NULL-terminated argument list (after argv[0]),
 * capturing stdout and stderr. */
static int run(struct cfg *c, char *out, char *err, size_t cap, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	va_start(ap, cap);
	argv[argc++] = "prog";
	for (char *a; argc < 31 && (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;

	struct opt t[NOPTS];
	struct capture co, ce;
	table(t, c);
	if (capture_begin(&co, 1))
		return -1;
	if (capture_begin(&ce, 2)) {
		capture_end(&co, out, cap);
		return -1;
	}
	int rc = (int)opts_parse(t, NOPTS, argc, argv, 1, "prog", "[options]");
	capture_end(&ce, err, cap);
	capture_end(&co, out, cap);
	return rc;
}

static int lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void t_defaults_env_cmdline(void)
{
	struct cfg c;
	char out[4096], err[4096];
	clear_env();
	CHECK_EQ(run(&c, out, err, sizeof(out), "--secret-file", "/s", NULL), OPTS_OK);
	CHECK_EQ(c.http_port, 7000);
	CHECK_EQ(c.tls_port, 5349);
	CHECK_EQ(c.ttl, 120);
	CHECK_STREQ(c.listen, "0.0.0.0");
	CHECK_STREQ(c.secret_file, "/s");
	CHECK(!c.ha);
	CHECK_STREQ(err, "");
	/* --foo-bar reads MESH_FOO_BAR. */
	setenv("MESH_HTTP_PORT", "8000", 1);
	setenv("MESH_MESSAGE_TTL", "30", 1);
	setenv("MESH_SECRET_FILE", "/env", 1);
	CHECK_EQ(run(&c, out, err, sizeof(out), NULL), OPTS_OK);
	CHECK_EQ(c.http_port, 8000);
	CHECK_EQ(c.ttl, 30);
	CHECK_STREQ(c.secret_file, "/env");
	/* The command line wins, in both forms. */
	CHECK_EQ(run(&c, out, err, sizeof(out), "--http-port", "9000", "--message-ttl=45",
		     "--secret-file=/cmd", NULL), OPTS_OK);
	CHECK_EQ(c.http_port, 9000);
	CHECK_EQ(c.ttl, 45);
	CHECK_STREQ(c.secret_file, "/cmd");
	/* The last of a repeated option wins. */
	CHECK_EQ(run(&c, out, err, sizeof(out), "--http-port", "1", "--http-port", "2", NULL), OPTS_OK);
	CHECK_EQ(c.http_port, 2);
out:
	clear_env();
}

static void t_flags(void)
{
	struct cfg c;
	char out[4096], err[4096];
	clear_env();
	setenv("MESH_SECRET_FILE", "/s", 1);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--ha", NULL), OPTS_OK);
	CHECK(c.ha);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--ha=false", NULL), OPTS_OK);
	CHECK(!c.ha);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--ha=true", NULL), OPTS_OK);
	CHECK(c.ha);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--ha=0", NULL), OPTS_OK);
	CHECK(!c.ha);
	setenv("MESH_HA", "1", 1);
	CHECK_EQ(run(&c, out, err, sizeof(out), NULL), OPTS_OK);
	CHECK(c.ha);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--ha=false", NULL), OPTS_OK); /* command line wins */
	CHECK(!c.ha);
	setenv("MESH_HA", "0", 1);
	CHECK_EQ(run(&c, out, err, sizeof(out), NULL), OPTS_OK);
	CHECK(!c.ha);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--ha", NULL), OPTS_OK);
	CHECK(c.ha);
	/* Bad flag values, from either source, exit 2 naming the option. */
	setenv("MESH_HA", "maybe", 1);
	CHECK_EQ(run(&c, out, err, sizeof(out), NULL), OPTS_EXIT_USAGE);
	CHECKF(strstr(err, "--ha") && lines(err) == 1, "stderr: %s", err);
	unsetenv("MESH_HA");
	CHECK_EQ(run(&c, out, err, sizeof(out), "--ha=maybe", NULL), OPTS_EXIT_USAGE);
	CHECKF(strstr(err, "--ha") && lines(err) == 1, "stderr: %s", err);
	/* A flag does not take the next argument as its value. */
	CHECK_EQ(run(&c, out, err, sizeof(out), "--ha", "true", NULL), OPTS_EXIT_USAGE);
out:
	clear_env();
}

static void t_errors(void)
{
	struct cfg c;
	char out[4096], err[4096];
	clear_env();
	setenv("MESH_SECRET_FILE", "/s", 1);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--bogus", NULL), OPTS_EXIT_USAGE);
	CHECKF(strstr(err, "--bogus") && lines(err) == 1, "stderr: %s", err);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--bogus=1", NULL), OPTS_EXIT_USAGE);
	CHECKF(strstr(err, "--bogus") && !strstr(err, "--bogus=") && lines(err) == 1, "stderr: %s", err);
	/* A prefix of an option is not the option. */
	CHECK_EQ(run(&c, out, err, sizeof(out), "--http", "1", NULL), OPTS_EXIT_USAGE);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--http-port", NULL), OPTS_EXIT_USAGE);
	CHECKF(strstr(err, "--http-port") && lines(err) == 1, "stderr: %s", err);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--http-port", "70000", NULL), OPTS_EXIT_USAGE);
	CHECKF(strstr(err, "--http-port") && lines(err) == 1, "stderr: %s", err);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--listen", "localhost", NULL), OPTS_EXIT_USAGE);
	CHECKF(strstr(err, "--listen") && lines(err) == 1, "stderr: %s", err);
	CHECK_EQ(run(&c, out, err, sizeof(out), "positional", NULL), OPTS_EXIT_USAGE);
	CHECK_EQ(run(&c, out, err, sizeof(out), "-x", NULL), OPTS_EXIT_USAGE);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--", NULL), OPTS_EXIT_USAGE);
	/* A bad environment value names the option too. */
	setenv("MESH_HTTP_PORT", "0", 1);
	CHECK_EQ(run(&c, out, err, sizeof(out), NULL), OPTS_EXIT_USAGE);
	CHECKF(strstr(err, "--http-port") && strstr(err, "MESH_HTTP_PORT") && lines(err) == 1,
	       "stderr: %s", err);
	unsetenv("MESH_HTTP_PORT");
	/* Required and missing: names the option and its variable. */
	unsetenv("MESH_SECRET_FILE");
	CHECK_EQ(run(&c, out, err, sizeof(out), "--http-port", "80", NULL), OPTS_EXIT_USAGE);
	CHECKF(strstr(err, "--secret-file") && strstr(err, "MESH_SECRET_FILE") && lines(err) == 1,
	       "stderr: %s", err);
	CHECK_EQ(run(&c, out, err, sizeof(out), "--secret-file", "", NULL), OPTS_EXIT_USAGE);
out:
	clear_env();
}

static void t_help_version(void)
{
	struct cfg c;
	char out[4096], err[4096];
	clear_env();
	/* Even with a required option missing and a bad value elsewhere. */
	CHECK_EQ(run(&c, out, err, sizeof(out), "--http-port", "0", "--help", NULL), OPTS_EXIT_OK);
	CHECKF(strstr(out, "--http-port") && strstr(out, "--secret-file") && strstr(out, "--ha") &&
	       strstr(out, "7000") && strstr(out, "required"), "help: %s", out);
	CHECK_STREQ(err, "");
	CHECK_EQ(run(&c, out, err, sizeof(out), "--version", NULL), OPTS_EXIT_OK);
	CHECKF(strstr(out, MESH_VERSION) != NULL, "version: %s", out);
out:
	clear_env();
}

static int port(const char *v, uint16_t *dst, int zero_ok)
{
	char err[128] = "";
	int rc = zero_ok ? opt_parse_port0(v, dst, err, sizeof(err)) : opt_parse_port(v, dst, err, sizeof(err));
	return rc == 0 || err[0] ? rc : -2; /* a refusal must say why */
}

static void t_parsers(void)
{
	uint16_t p = 0;
	unsigned s = 0;
	char err[128];
	CHECK(port("1", &p, 0) == 0 && p == 1);
	CHECK(port("65535", &p, 0) == 0 && p == 65535);
	CHECK(port("0", &p, 1) == 0 && p == 0);
	CHECK(port("65535", &p, 1) == 0 && p == 65535);
	static const char *const bad[] = { "0", "65536", "", "-1", "+1", " 1", "1 ", "0x10", "1e3",
					   "99999999999999999999", "4294967297", "18446744073709551617", "abc" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = 4242;
		CHECKF(port(bad[i], &p, 0) == -1 && p == 4242, "port accepted \"%s\"", bad[i]);
		if (strcmp(bad[i], "0") != 0)
			CHECKF(port(bad[i], &p, 1) == -1 && p == 4242, "port0 accepted \"%s\"", bad[i]);
	}
	CHECK(opt_parse_seconds("1", &s, err, sizeof(err)) == 0 && s == 1);
	CHECK(opt_parse_seconds("86400", &s, err, sizeof(err)) == 0 && s == 86400);
	CHECK(opt_parse_seconds("0", &s, err, sizeof(err)) == -1);
	CHECK(opt_parse_seconds("86401", &s, err, sizeof(err)) == -1);
	CHECK(opt_parse_seconds("-5", &s, err, sizeof(err)) == -1);
	const char *a = NULL;
	CHECK(opt_parse_ipaddr("198.18.0.10", &a, err, sizeof(err)) == 0 && !strcmp(a, "198.18.0.10"));
	CHECK(opt_parse_ipaddr("::1", &a, err, sizeof(err)) == 0);
	CHECK(opt_parse_ipaddr("198.18.0.256", &a, err, sizeof(err)) == -1);
	CHECK(opt_parse_ipaddr("example.com", &a, err, sizeof(err)) == -1);
	CHECK(opt_parse_ipaddr("", &a, err, sizeof(err)) == -1);
	/* Log level and format apply globally; restore the defaults. */
	CHECK(opt_parse_loglevel("debug", &a, err, sizeof(err)) == 0 && log_get_level() == LOG_LVL_DEBUG);
	CHECK(opt_parse_loglevel("verbose", &a, err, sizeof(err)) == -1 && log_get_level() == LOG_LVL_DEBUG);
	CHECK(opt_parse_logformat("json", &a, err, sizeof(err)) == 0);
	CHECK(opt_parse_logformat("xml", &a, err, sizeof(err)) == -1);
out:
	log_set_level("info");
	log_set_format("text");
}

TEST_SUITE(opts_suite,
	{ "opts_defaults_env_cmdline", t_defaults_env_cmdline },
	{ "opts_flags", t_flags },
	{ "opts_errors", t_errors },
	{ "opts_help_version", t_help_version },
	{ "opts_parsers", t_parsers });
