/* Tests of signaling/keys.c: HKDF-SHA256 against RFC 5869, the three
 * derived keys and their info strings, secret_decode, and every check
 * keys_load makes on the secret file (CONTRACT section 3). Files are made
 * in a private mkdtemp directory that each test removes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "signaling/keys.h"
#include "tests/unit/test.h"

/* ---- HKDF: RFC 5869 appendix A, the SHA-256 cases 1-3 ------------------ */

struct hkdf_vector {
	const char *ikm, *salt, *info, *okm;
	size_t len;
};

static const struct hkdf_vector rfc5869[] = {
	{ /* A.1 Test Case 1: basic test case with SHA-256 */
	  .ikm = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
	  .salt = "000102030405060708090a0b0c",
	  .info = "f0f1f2f3f4f5f6f7f8f9",
	  .len = 42,
	  .okm = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
		 "34007208d5b887185865" },
	{ /* A.2 Test Case 2: longer inputs and outputs */
	  .ikm = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
		 "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
		 "404142434445464748494a4b4c4d4e4f",
	  .salt = "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
		  "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
		  "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
	  .info = "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
		  "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
		  "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
	  .len = 82,
	  .okm = "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
		 "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
		 "cc30c58179ec3e87c14c01d5c1f3434f1d87" },
	{ /* A.3 Test Case 3: zero-length salt and info */
	  .ikm = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
	  .salt = "",
	  .info = "",
	  .len = 42,
	  .okm = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
		 "9d201395faa4b61a96c8" },
};

static int run_hkdf_vector(const struct hkdf_vector *v)
{
	uint8_t ikm[128], salt[128], info[128], okm[128], out[128];
	long ikm_len = test_unhex(v->ikm, ikm, sizeof(ikm));
	long salt_len = test_unhex(v->salt, salt, sizeof(salt));
	long info_len = test_unhex(v->info, info, sizeof(info));
	long okm_len = test_unhex(v->okm, okm, sizeof(okm));
	CHECK(ikm_len > 0 && salt_len >= 0 && info_len >= 0 && okm_len == (long)v->len);
	memset(out, 0xa5, sizeof(out));
	CHECK_EQ(hkdf_sha256(salt_len ? salt : NULL, (size_t)salt_len, ikm, (size_t)ikm_len,
			     info_len ? info : NULL, (size_t)info_len, out, v->len), 0);
	CHECKF(memcmp(out, okm, v->len) == 0, "OKM differs from RFC 5869");
	CHECKF(out[v->len] == 0xa5, "wrote past out_len");
	/* Test Case 3's "zero-length salt" must equal a salt of HashLen
	 * zeros (RFC 5869 section 2.2). */
	if (salt_len == 0) {
		uint8_t zeros[32] = { 0 };
		memset(out, 0, sizeof(out));
		CHECK_EQ(hkdf_sha256(zeros, sizeof(zeros), ikm, (size_t)ikm_len, NULL, 0, out,
				     v->len), 0);
		CHECKF(memcmp(out, okm, v->len) == 0, "HashLen zero salt differs from no salt");
	}
	return 0;
out:
	return -1;
}

static void t_hkdf_case1(void) { run_hkdf_vector(&rfc5869[0]); }
static void t_hkdf_case2(void) { run_hkdf_vector(&rfc5869[1]); }
static void t_hkdf_case3(void) { run_hkdf_vector(&rfc5869[2]); }

static void t_hkdf_bad_args(void)
{
	uint8_t ikm[32] = { 1 }, out[255 * 32 + 1];
	CHECK_EQ(hkdf_sha256(NULL, 0, ikm, sizeof(ikm), NULL, 0, out, 0), EINVAL);
	CHECK_EQ(hkdf_sha256(NULL, 0, NULL, 0, NULL, 0, out, 32), EINVAL);
	CHECK_EQ(hkdf_sha256(NULL, 0, ikm, sizeof(ikm), NULL, 0, NULL, 32), EINVAL);
	/* RFC 5869 2.3: L <= 255*HashLen. */
	CHECK_EQ(hkdf_sha256(NULL, 0, ikm, sizeof(ikm), NULL, 0, out, 255 * 32 + 1), EINVAL);
	CHECK_EQ(hkdf_sha256(NULL, 0, ikm, sizeof(ikm), NULL, 0, out, 255 * 32), 0);
out:;
}

/* ---- the derived keys -------------------------------------------------- */

/* Root secret 00 01 .. 1f. Expected keys computed once with the openssl
 * CLI (independent of keys.c), e.g. for the signal key:
 *   openssl kdf -keylen 32 -kdfopt digest:SHA256 \
 *     -kdfopt hexkey:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
 *     -kdfopt info:mesh/v1/signal HKDF
 * and info:mesh/v1/turn, info:mesh/v1/e2e for the others. */
static const char ROOT_HEX[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char SIGNAL_HEX[] = "71dbf9be067f280bee59e24066983843fdcc29357e33285b309b21173478f9f6";
static const char TURN_HEX[] = "fb04ddb58de4c10e12edb17985ce4aeb6d4d4f8b5bffc0f98e4a90b5b2f8f279";
static const char E2E_HEX[] = "b769fab2305fb3c475608a1d85b14d405b94397a925508b534244c7474c9a7bb";

static void t_keys_derive_vectors(void)
{
	uint8_t root[32], want[32];
	struct mesh_keys k;
	CHECK_EQ(test_unhex(ROOT_HEX, root, sizeof(root)), 32);
	CHECK_EQ(keys_derive(root, sizeof(root), &k), 0);
	test_unhex(SIGNAL_HEX, want, sizeof(want));
	CHECKF(!memcmp(k.signal, want, 32), "signal key differs from HKDF(root, \"mesh/v1/signal\")");
	test_unhex(TURN_HEX, want, sizeof(want));
	CHECKF(!memcmp(k.turn, want, 32), "turn key differs from HKDF(root, \"mesh/v1/turn\")");
	test_unhex(E2E_HEX, want, sizeof(want));
	CHECKF(!memcmp(k.e2e, want, 32), "e2e key differs from HKDF(root, \"mesh/v1/e2e\")");
	/* coturn's static-auth-secret: the turn key as lower-case hex. */
	CHECK_STREQ(k.turn_hex, TURN_HEX);
out:;
}

static void t_keys_derive_info_strings(void)
{
	/* The same through hkdf_sha256 with each info string and empty salt,
	 * for a root that is not the vector above. */
	static const char *const infos[] = { "mesh/v1/signal", "mesh/v1/turn", "mesh/v1/e2e" };
	uint8_t root[48], out[32];
	struct mesh_keys k;
	for (size_t i = 0; i < sizeof(root); i++)
		root[i] = (uint8_t)(0xc3 ^ (i * 7));
	CHECK_EQ(keys_derive(root, sizeof(root), &k), 0);
	const uint8_t *got[] = { k.signal, k.turn, k.e2e };
	for (size_t i = 0; i < 3; i++) {
		CHECK_EQ(hkdf_sha256(NULL, 0, root, sizeof(root), (const uint8_t *)infos[i],
				     strlen(infos[i]), out, sizeof(out)), 0);
		CHECKF(!memcmp(got[i], out, 32), "key %zu is not HKDF(root, \"%s\")", i, infos[i]);
	}
	CHECK(memcmp(k.signal, k.turn, 32) && memcmp(k.turn, k.e2e, 32) && memcmp(k.signal, k.e2e, 32));
out:;
}

static void t_keys_derive_short_root(void)
{
	uint8_t root[31] = { 0 };
	struct mesh_keys k;
	CHECK_EQ(keys_derive(root, sizeof(root), &k), EINVAL);
out:;
}

/* ---- secret_decode ----------------------------------------------------- */

static long decode(const char *s, uint8_t *out, size_t cap)
{
	return secret_decode(s, strlen(s), out, cap);
}

static void t_secret_decode(void)
{
	uint8_t out[64];
	CHECK_EQ(decode("00ff7A", out, sizeof(out)), 3);
	CHECK(out[0] == 0x00 && out[1] == 0xff && out[2] == 0x7a);
	CHECK_EQ(decode("DEADbeef", out, sizeof(out)), 4);
	CHECK(out[0] == 0xde && out[3] == 0xef);
	/* "/+8=" and "_-8" are the same three bits patterns in the two
	 * alphabets: 0xff 0xef. */
	CHECK_EQ(decode("/+8=", out, sizeof(out)), 2);
	CHECK(out[0] == 0xff && out[1] == 0xef);
	CHECK_EQ(decode("_-8", out, sizeof(out)), 2);
	CHECK(out[0] == 0xff && out[1] == 0xef);
	CHECK_EQ(decode("aGVsbG8=", out, sizeof(out)), 5);
	CHECK(!memcmp(out, "hello", 5));
	CHECK_EQ(decode("aGVsbG8", out, sizeof(out)), 5);
	CHECK(!memcmp(out, "hello", 5));
	/* Refused: empty, bad characters, '=' inside, one lone 6-bit group. */
	CHECK_EQ(decode("", out, sizeof(out)), -1);
	CHECK_EQ(decode("aGV sbG8", out, sizeof(out)), -1);
	CHECK_EQ(decode("aG=sbG8=", out, sizeof(out)), -1);
	CHECK_EQ(decode("aGVsb", out, sizeof(out)), -1);
	CHECK_EQ(decode("====", out, sizeof(out)), -1);
	CHECK_EQ(decode("00ff\n", out, sizeof(out)), -1);
	/* Never more than cap bytes, in either form. */
	CHECK_EQ(decode("00112233", out, 3), -1);
	CHECK_EQ(decode("00112233", out, 4), 4);
	CHECK_EQ(decode("aGVsbG8=", out, 4), -1);
	CHECK_EQ(decode("aGVsbG8=", out, 5), 5);
out:;
}

/* ---- keys_load: the secret file --------------------------------------- */

struct tmpdir {
	char dir[64];
	char path[128];
};

static int tmp_make(struct tmpdir *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/unit-keys-XXXXXX");
	if (!mkdtemp(t->dir))
		return -1;
	snprintf(t->path, sizeof(t->path), "%s/secret", t->dir);
	return 0;
}

static void tmp_remove(struct tmpdir *t)
{
	char p[160];
	if (!t->dir[0] || t->dir[0] != '/')
		return;
	static const char *const names[] = { "secret", "target", "sub" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", t->dir, names[i]);
		if (unlink(p) != 0)
			rmdir(p);
	}
	rmdir(t->dir);
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, data, len);
	int rc = (w == (ssize_t)len && fchmod(fd, mode) == 0) ? 0 : -1;
	close(fd);
	return rc;
}

/* Writes content with mode into a fresh file and loads it. */
static int load_text(const char *content, size_t len, mode_t mode, struct mesh_keys *k,
		     char *err, size_t errlen)
{
	struct tmpdir t = { { 0 } };
	int rc = -1;
	err[0] = '\0';
	if (tmp_make(&t) == 0 && write_file(t.path, content, len, mode) == 0)
		rc = keys_load(t.path, k, err, errlen);
	tmp_remove(&t);
	return rc;
}

static int load_str(const char *content, mode_t mode, char *err, size_t errlen)
{
	struct mesh_keys k;
	return load_text(content, strlen(content), mode, &k, err, errlen);
}

static void root_bytes(uint8_t *root, size_t len)
{
	/* Bytes whose base64 holds both '+' and '/' (fb ef be -> "++++",
	 * ff ff ff -> "////"). */
	static const uint8_t pat[] = { 0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff, 0x10, 0x42, 0x99 };
	for (size_t i = 0; i < len; i++)
		root[i] = pat[i % sizeof(pat)];
}

/* Loads text (already in the file's encoding) and checks the keys equal
 * keys_derive over the expected root. */
static int load_expect_root(const char *text, const uint8_t *root, size_t root_len)
{
	struct mesh_keys got, want;
	char err[256];
	int rc = load_text(text, strlen(text), 0600, &got, err, sizeof(err));
	CHECKF(rc == 0, "keys_load(\"%.60s\") = %d: %s", text, rc, err);
	CHECK_EQ(keys_derive(root, root_len, &want), 0);
	CHECKF(!memcmp(&got, &want, sizeof(got)), "keys from the file differ from keys_derive(root)");
	return 0;
out:
	return -1;
}

static void t_secret_hex(void)
{
	uint8_t root[32];
	char hex[65], line[80];
	root_bytes(root, sizeof(root));
	for (size_t i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", root[i]);
	CHECK(load_expect_root(hex, root, 32) == 0);
	snprintf(line, sizeof(line), "%s\n", hex);
	CHECK(load_expect_root(line, root, 32) == 0);
	snprintf(line, sizeof(line), "%s\r\n", hex);
	CHECK(load_expect_root(line, root, 32) == 0);
	for (size_t i = 0; i < 64; i++) /* upper-case hex is hex too */
		line[i] = (char)(hex[i] >= 'a' ? hex[i] - 32 : hex[i]);
	line[64] = '\0';
	CHECK(load_expect_root(line, root, 32) == 0);
out:;
}

static void t_secret_base64(void)
{
	uint8_t root[32];
	char std[64], url[64], line[80];
	root_bytes(root, sizeof(root));
	CHECK_EQ(EVP_EncodeBlock((unsigned char *)std, root, 32), 44);
	CHECKF(strchr(std, '+') && strchr(std, '/') && std[43] == '=', "test data: %s", std);
	for (size_t i = 0; i <= 44; i++)
		url[i] = std[i] == '+' ? '-' : std[i] == '/' ? '_' : std[i];

	CHECK(load_expect_root(std, root, 32) == 0);                 /* padded */
	snprintf(line, sizeof(line), "%.43s", std);                  /* unpadded */
	CHECK(load_expect_root(line, root, 32) == 0);
	CHECK(load_expect_root(url, root, 32) == 0);                 /* URL-safe padded */
	snprintf(line, sizeof(line), "%.43s\n", url);                /* URL-safe unpadded, newline */
	CHECK(load_expect_root(line, root, 32) == 0);
	snprintf(line, sizeof(line), "%s\r\n", std);                 /* CRLF */
	CHECK(load_expect_root(line, root, 32) == 0);
out:;
}

static void t_secret_longer_root(void)
{
	/* 32 or more bytes: 64 bytes and the 1024-byte maximum are accepted. */
	uint8_t root[ROOT_SECRET_MAX];
	char hex[2 * ROOT_SECRET_MAX + 2];
	root_bytes(root, sizeof(root));
	for (size_t i = 0; i < 64; i++)
		snprintf(hex + 2 * i, 3, "%02x", root[i]);
	CHECK(load_expect_root(hex, root, 64) == 0);
	for (size_t i = 0; i < ROOT_SECRET_MAX; i++)
		snprintf(hex + 2 * i, 3, "%02x", root[i]);
	CHECK(load_expect_root(hex, root, ROOT_SECRET_MAX) == 0);
out:;
}

static void t_secret_missing(void)
{
	struct mesh_keys k;
	char err[256] = "";
	CHECK_EQ(keys_load("/nonexistent/unit-tests/secret", &k, err, sizeof(err)), ENOENT);
	CHECKF(strstr(err, "/nonexistent/unit-tests/secret"), "error does not name the file: %s", err);
out:;
}

static void t_secret_refused_content(void)
{
	static const struct { const char *what, *text; } bad[] = {
		{ "empty", "" },
		{ "newline only", "\n" },
		{ "CRLF only", "\r\n" },
		{ "spaces", "    \n" },
		{ "tab", "\t" },
		{ "31 bytes hex", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e\n" },
		{ "31 bytes base64", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n" },
		{ "two lines",
		  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
		  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n" },
		{ "blank second line",
		  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n\n" },
		{ "leading space", " 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" },
		{ "trailing space", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \n" },
		{ "not hex nor base64", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g!\n" },
		{ "key=value", "secret=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256];
		int rc = load_str(bad[i].text, 0600, err, sizeof(err));
		CHECKF(rc != 0, "%s: accepted", bad[i].what);
		CHECKF(err[0] && strstr(err, "/tmp/unit-keys-"), "%s: error does not name the file: \"%s\"",
		       bad[i].what, err);
	}
out:;
}

static void t_secret_mode(void)
{
	static const char hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
	static const mode_t refused[] = { 0640, 0604, 0644, 0660, 0606, 0610, 0601, 0620, 0602, 0777 };
	char err[256];
	CHECK_EQ(load_str(hex, 0600, err, sizeof(err)), 0);
	CHECK_EQ(load_str(hex, 0400, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		int rc = load_str(hex, refused[i], err, sizeof(err));
		CHECKF(rc == EPERM, "mode %03o: rc %d, want EPERM", (unsigned)refused[i], rc);
		CHECKF(strstr(err, "mode"), "mode %03o: error does not say why: %s", (unsigned)refused[i], err);
	}
out:;
}

static void t_secret_directory(void)
{
	struct tmpdir t = { { 0 } };
	struct mesh_keys k;
	char err[256] = "", sub[160];
	CHECK(tmp_make(&t) == 0);
	snprintf(sub, sizeof(sub), "%s/sub", t.dir);
	CHECK(mkdir(sub, 0700) == 0);
	CHECK(keys_load(sub, &k, err, sizeof(err)) != 0);
	CHECK(err[0] != '\0');
out:
	tmp_remove(&t);
}

static void t_secret_symlink(void)
{
	static const char hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
	struct tmpdir t = { { 0 } };
	struct mesh_keys k;
	char err[256] = "", target[160];
	CHECK(tmp_make(&t) == 0);
	snprintf(target, sizeof(target), "%s/target", t.dir);
	CHECK(write_file(target, hex, strlen(hex), 0600) == 0);
	CHECK_EQ(keys_load(target, &k, err, sizeof(err)), 0); /* the target itself is good */
	CHECK(symlink(target, t.path) == 0);
	CHECK_EQ(keys_load(t.path, &k, err, sizeof(err)), ELOOP); /* O_NOFOLLOW */
out:
	tmp_remove(&t);
}

static void t_secret_fifo(void)
{
	/* A FIFO is not a regular file: refused at once, not waited on for a
	 * writer. Run in a child so a hang fails this test after 2 s instead
	 * of hanging the suite. */
	struct tmpdir t = { { 0 } };
	pid_t pid = -1;
	int status = 0;
	CHECK(tmp_make(&t) == 0);
	CHECK(mkfifo(t.path, 0600) == 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct mesh_keys k;
		char err[256];
		alarm(2);
		_exit(keys_load(t.path, &k, err, sizeof(err)) != 0 ? 0 : 1);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECKF(!WIFSIGNALED(status), "keys_load on a FIFO blocked (killed by signal %d)",
	       WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "keys_load accepted a FIFO");
out:
	tmp_remove(&t);
}

static void t_secret_overlong(void)
{
	/* 4097 bytes of hex: longer than any secret line; and a hex line of
	 * 1025 bytes, above ROOT_SECRET_MAX. */
	static char big[4200];
	char err[256];
	memset(big, 'a', 4097);
	big[4097] = '\0';
	CHECK(load_str(big, 0600, err, sizeof(err)) != 0);
	memset(big, 'a', sizeof(big));
	big[2 * (ROOT_SECRET_MAX + 1)] = '\n';
	big[2 * (ROOT_SECRET_MAX + 1) + 1] = '\0';
	CHECK(load_str(big, 0600, err, sizeof(err)) != 0);
out:;
}

TEST_SUITE(keys_suite,
	{ "keys_hkdf_rfc5869_case1", t_hkdf_case1 },
	{ "keys_hkdf_rfc5869_case2", t_hkdf_case2 },
	{ "keys_hkdf_rfc5869_case3", t_hkdf_case3 },
	{ "keys_hkdf_bad_args", t_hkdf_bad_args },
	{ "keys_derive_vectors", t_keys_derive_vectors },
	{ "keys_derive_info_strings", t_keys_derive_info_strings },
	{ "keys_derive_short_root", t_keys_derive_short_root },
	{ "keys_secret_decode", t_secret_decode },
	{ "keys_secret_file_hex", t_secret_hex },
	{ "keys_secret_file_base64", t_secret_base64 },
	{ "keys_secret_file_longer_root", t_secret_longer_root },
	{ "keys_secret_file_missing", t_secret_missing },
	{ "keys_secret_file_refused_content", t_secret_refused_content },
	{ "keys_secret_file_mode", t_secret_mode },
	{ "keys_secret_file_directory", t_secret_directory },
	{ "keys_secret_file_symlink", t_secret_symlink },
	{ "keys_secret_file_fifo_refused", t_secret_fifo },
	{ "keys_secret_file_overlong", t_secret_overlong });
