/* unit-tests: runs every module's table of named tests, or only the ones
 * named on the command line (a trailing '*' matches a prefix), and prints
 * "ok - name" / "not ok - name: reason" per test and one final line
 * "N passed, M failed". Exit 0 only when all ran and passed; 2 for an
 * unknown name. Owns the runner and the shared helpers of test.h. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/test.h"

static const struct test_suite *const suites[] = {
	&keys_suite, &auth_suite, &wire_suite, &replay_suite, &ratelimit_suite,
	&mailbox_suite, &strmap_suite, &opts_suite,
};
#define NSUITES (sizeof(suites) / sizeof(suites[0]))

static char fail_reason[512];
static bool failed;

void test_fail(const char *file, int line, const char *fmt, ...)
{
	if (failed)
		return;
	failed = true;
	int n = snprintf(fail_reason, sizeof(fail_reason), "%s:%d: ", file, line);
	if (n < 0 || (size_t)n >= sizeof(fail_reason))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fail_reason + n, sizeof(fail_reason) - (size_t)n, fmt, ap);
	va_end(ap);
}

long test_unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t len = strlen(hex);
	if (len % 2 || len / 2 > cap)
		return -1;
	for (size_t i = 0; i < len; i += 2) {
		unsigned v;
		if (sscanf(hex + i, "%2x", &v) != 1)
			return -1;
		out[i / 2] = (uint8_t)v;
	}
	return (long)(len / 2);
}

int capture_begin(struct capture *c, int fd)
{
	char path[] = "/tmp/unit-capture-XXXXXX";
	fflush(stdout);
	fflush(stderr);
	c->fd = fd;
	c->tmp = mkstemp(path);
	if (c->tmp < 0)
		return -1;
	unlink(path);
	c->saved = dup(fd);
	if (c->saved < 0 || dup2(c->tmp, fd) < 0) {
		close(c->tmp);
		if (c->saved >= 0)
			close(c->saved);
		return -1;
	}
	return 0;
}

void capture_end(struct capture *c, char *buf, size_t cap)
{
	fflush(stdout);
	fflush(stderr);
	dup2(c->saved, c->fd);
	close(c->saved);
	ssize_t got = pread(c->tmp, buf, cap - 1, 0);
	buf[got > 0 ? (size_t)got : 0] = '\0';
	close(c->tmp);
}

static bool selected(const char *name, int argc, char **argv, bool *used)
{
	if (argc < 2)
		return true;
	bool hit = false;
	for (int i = 1; i < argc; i++) {
		size_t len = strlen(argv[i]);
		bool match = len && argv[i][len - 1] == '*' ? strncmp(name, argv[i], len - 1) == 0
							 : strcmp(name, argv[i]) == 0;
		if (match) {
			used[i] = true;
			hit = true;
		}
	}
	return hit;
}

int main(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "-l") || !strcmp(argv[1], "--list"))) {
		for (size_t s = 0; s < NSUITES; s++)
			for (size_t i = 0; i < suites[s]->n; i++)
				printf("%s\n", suites[s]->cases[i].name);
		return 0;
	}
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: %s [-l | NAME... | PREFIX*...]\n", argv[0]);
		return 0;
	}
	bool used[argc > 0 ? argc : 1];
	memset(used, 0, sizeof(used));
	/* Check names before running anything: a typo must not pass as 0 run. */
	for (size_t s = 0; s < NSUITES; s++)
		for (size_t i = 0; i < suites[s]->n; i++)
			selected(suites[s]->cases[i].name, argc, argv, used);
	for (int i = 1; i < argc; i++) {
		if (!used[i]) {
			fprintf(stderr, "%s: no test named %s (see -l)\n", argv[0], argv[i]);
			return 2;
		}
	}

	unsigned passed = 0, nfailed = 0;
	for (size_t s = 0; s < NSUITES; s++) {
		for (size_t i = 0; i < suites[s]->n; i++) {
			const struct test_case *t = &suites[s]->cases[i];
			if (!selected(t->name, argc, argv, used))
				continue;
			failed = false;
			fail_reason[0] = '\0';
			t->fn();
			fflush(stderr);
			if (failed) {
				printf("not ok - %s: %s\n", t->name, fail_reason);
				nfailed++;
			} else {
				printf("ok - %s\n", t->name);
				passed++;
			}
			fflush(stdout);
		}
	}
	printf("%u passed, %u failed\n", passed, nfailed);
	return nfailed ? 1 : 0;
}
