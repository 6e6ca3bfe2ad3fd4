/* unit-tests: the shared test harness (a table of named tests per module,
 * CHECK macros that record the first failure and jump to the test's one
 * `out:` cleanup label) and small helpers the module tests share. Owns no
 * test logic; main.c runs the tables. */
#ifndef MESH_TESTS_UNIT_TEST_H
#define MESH_TESTS_UNIT_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct test_case {
	const char *name;
	void (*fn)(void);
};

struct test_suite {
	const struct test_case *cases;
	size_t n;
};

#define TEST_SUITE(var, ...)                                              \
	static const struct test_case var##_cases[] = { __VA_ARGS__ };    \
	const struct test_suite var = { var##_cases,                      \
		sizeof(var##_cases) / sizeof(var##_cases[0]) }

/* One suite per module file. */
extern const struct test_suite auth_suite, keys_suite, wire_suite, mailbox_suite,
	replay_suite, ratelimit_suite, strmap_suite, opts_suite;

/* Records the first failure of the running test ("file:line: reason"). */
void test_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                                       \
	do {                                                              \
		if (!(cond)) {                                            \
			test_fail(__FILE__, __LINE__, "%s", #cond);       \
			goto out;                                         \
		}                                                         \
	} while (0)

#define CHECKF(cond, ...)                                                 \
	do {                                                              \
		if (!(cond)) {                                            \
			test_fail(__FILE__, __LINE__, __VA_ARGS__);       \
			goto out;                                         \
		}                                                         \
	} while (0)

#define CHECK_EQ(a, b)                                                    \
	do {                                                              \
		long long a_ = (long long)(a), b_ = (long long)(b);       \
		if (a_ != b_) {                                           \
			test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", \
				  #a, #b, a_, b_);                        \
			goto out;                                         \
		}                                                         \
	} while (0)

#define CHECK_STREQ(a, b)                                                 \
	do {                                                              \
		const char *a_ = (a), *b_ = (b);                          \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                  \
			test_fail(__FILE__, __LINE__, "%s == %s: \"%.80s\" != \"%.80s\"", \
				  #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
			goto out;                                         \
		}                                                         \
	} while (0)

/* Decodes lower- or upper-case hex into out (cap bytes); returns the
 * length or -1. Test data only. */
long test_unhex(const char *hex, uint8_t *out, size_t cap);

/* Captures what the code under test writes to fd 1 or 2 between begin
 * and end into a NUL-terminated buffer (truncated at cap). */
struct capture {
	int fd, saved, tmp;
};
int capture_begin(struct capture *c, int fd);
void capture_end(struct capture *c, char *buf, size_t cap);

#endif
