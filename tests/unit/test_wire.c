/* Tests of signaling/wire.c: wire_parse_publish against every rule of
 * CONTRACT section 2 for a publish body (fields, types, bounds, strict
 * JSON, the 65536-byte body limit). Bodies are built from raw JSON
 * fragments so that mistyped, missing and duplicate fields are easy. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "signaling/wire.h"
#include "tests/unit/test.h"

#define PSIG "dd0ba0d066796eec6c9435d8e9ce34de040fe720ede7633222458e4009981ff8"

/* Each member is a raw JSON value, or NULL to leave the field out. */
struct fields {
	const char *from, *to, *epoch, *kind, *payload, *psig;
	const char *extra; /* raw "key":value text appended, or NULL */
};

static const struct fields GOOD = {
	.from = "\"w1\"", .to = "\"w2\"", .epoch = "1764253800123",
	.kind = "\"offer\"", .payload = "\"hello\"", .psig = "\"" PSIG "\"",
};

static char *build(const struct fields *f)
{
	const char *names[] = { "from", "to", "epoch", "kind", "payload", "psig" };
	const char *vals[] = { f->from, f->to, f->epoch, f->kind, f->payload, f->psig };
	size_t cap = 64 + (f->extra ? strlen(f->extra) : 0);
	for (size_t i = 0; i < 6; i++)
		cap += vals[i] ? strlen(vals[i]) + 16 : 0;
	char *s = malloc(cap), *p = s;
	if (!s)
		abort();
	*p++ = '{';
	for (size_t i = 0; i < 6; i++)
		if (vals[i])
			p += sprintf(p, "%s\"%s\":%s", p == s + 1 ? "" : ",", names[i], vals[i]);
	if (f->extra)
		p += sprintf(p, "%s%s", p == s + 1 ? "" : ",", f->extra);
	*p++ = '}';
	*p = '\0';
	return s;
}

/* Parses text and frees the document; returns the parser's answer. */
static int parse_text(const char *text, size_t len, struct publish_msg *msg)
{
	struct wire_doc *doc = (struct wire_doc *)1;
	const char *why = NULL;
	int rc = wire_parse_publish(text, len, msg, &doc, &why);
	if (rc) {
		/* A refusal leaves no document and says why. */
		if (doc != NULL || !why || !*why)
			return -1000;
	} else if (!doc) {
		return -1001;
	}
	wire_doc_free(doc);
	return rc;
}

static int parse_fields(const struct fields *f)
{
	struct publish_msg msg;
	char *s = build(f);
	int rc = parse_text(s, strlen(s), &msg);
	free(s);
	return rc;
}

/* A copy of GOOD with member i (0..5 in struct order) set to v. */
static struct fields with(int i, const char *v)
{
	struct fields f = GOOD;
	const char **m[] = { &f.from, &f.to, &f.epoch, &f.kind, &f.payload, &f.psig };
	*m[i] = v;
	return f;
}

enum { F_FROM, F_TO, F_EPOCH, F_KIND, F_PAYLOAD, F_PSIG };

static void t_valid(void)
{
	struct publish_msg msg;
	struct wire_doc *doc = NULL;
	const char *why = NULL;
	char *s = build(&GOOD);
	CHECK_EQ(wire_parse_publish(s, strlen(s), &msg, &doc, &why), 0);
	CHECK(doc != NULL);
	CHECK_STREQ(msg.from, "w1");
	CHECK_STREQ(msg.to, "w2");
	CHECK_EQ(msg.epoch, 1764253800123LL);
	CHECK_STREQ(msg.kind, "offer");
	CHECK_EQ(msg.payload_len, 5);
	CHECK_STREQ(msg.payload, "hello");
	CHECK_STREQ(msg.psig, PSIG);
	/* The payload is borrowed from the document, not from the body. */
	CHECK(msg.payload < s || msg.payload >= s + strlen(s));
	wire_doc_free(doc);
	doc = NULL;

	/* Any key order, whitespace, escapes decoded into bytes. */
	static const char other[] =
		" {\n\t\"psig\" : \"" PSIG "\", \"payload\":\"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00/\","
		"\"kind\":\"answer\",\"epoch\":1,\"to\":\"A-Z.a_z0-9\",\"from\":\"x\"} \r\n";
	CHECK_EQ(wire_parse_publish(other, sizeof(other) - 1, &msg, &doc, &why), 0);
	CHECK_STREQ(msg.to, "A-Z.a_z0-9");
	CHECK_STREQ(msg.from, "x");
	CHECK_EQ(msg.epoch, 1);
	CHECK_STREQ(msg.kind, "answer");
	CHECK_EQ(msg.payload_len, 13);
	CHECK(!memcmp(msg.payload, "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80/", 14));
out:
	wire_doc_free(doc);
	free(s);
}

static void t_missing_field(void)
{
	for (int i = 0; i < 6; i++) {
		struct fields f = with(i, NULL);
		CHECKF(parse_fields(&f) == EBADMSG, "accepted without field %d", i);
	}
	/* A field missing but replaced by another keeps the count at six. */
	struct fields f = with(F_PSIG, NULL);
	f.extra = "\"sig\":\"" PSIG "\"";
	CHECK_EQ(parse_fields(&f), EBADMSG);
out:;
}

static void t_mistyped(void)
{
	static const char *const not_string[] = { "1", "null", "true", "false", "[]", "{}", "[\"w1\"]", "1.5" };
	static const int string_fields[] = { F_FROM, F_TO, F_KIND, F_PAYLOAD, F_PSIG };
	for (size_t i = 0; i < sizeof(string_fields) / sizeof(string_fields[0]); i++) {
		for (size_t j = 0; j < sizeof(not_string) / sizeof(not_string[0]); j++) {
			struct fields f = with(string_fields[i], not_string[j]);
			CHECKF(parse_fields(&f) == EBADMSG, "field %d accepted %s", string_fields[i], not_string[j]);
		}
	}
	static const char *const not_int[] = { "\"1\"", "null", "true", "[1]", "{}", "1.0", "1e3", "1E3", "0x10" };
	for (size_t j = 0; j < sizeof(not_int) / sizeof(not_int[0]); j++) {
		struct fields f = with(F_EPOCH, not_int[j]);
		CHECKF(parse_fields(&f) == EBADMSG, "epoch accepted %s", not_int[j]);
	}
out:;
}

static void t_epoch(void)
{
	static const struct { const char *v; int ok; } cases[] = {
		{ "0", 0 }, { "1", 1 }, { "2", 1 }, { "9007199254740991", 1 },
		{ "9007199254740992", 0 }, { "9007199254740993", 0 }, { "9223372036854775807", 0 },
		{ "9223372036854775808", 0 }, { "18446744073709551615", 0 }, { "99999999999999999999999", 0 },
		{ "-1", 0 }, { "-0", 0 }, { "-9007199254740991", 0 }, { "-9223372036854775808", 0 },
		{ "1.5", 0 }, { "9007199254740991.0", 0 }, { "\"5\"", 0 }, { "01", 0 }, { "+1", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fields f = with(F_EPOCH, cases[i].v);
		int rc = parse_fields(&f);
		CHECKF(cases[i].ok ? rc == 0 : rc == EBADMSG, "epoch %s: rc %d", cases[i].v, rc);
	}
	struct publish_msg msg;
	static const char max[] = "{\"from\":\"a\",\"to\":\"b\",\"epoch\":9007199254740991,\"kind\":\"k\","
				  "\"payload\":\"\",\"psig\":\"" PSIG "\"}";
	CHECK_EQ(parse_text(max, sizeof(max) - 1, &msg), 0);
	CHECK_EQ(msg.epoch, 9007199254740991LL);
	CHECK_EQ(msg.payload_len, 0);
out:;
}

static void t_kind(void)
{
	static const struct { const char *v; int ok; } cases[] = {
		{ "\"a\"", 1 }, { "\"offer\"", 1 }, { "\"abcdefghijklmnop\"", 1 },
		{ "\"abcdefghijklmnopq\"", 0 }, { "\"\"", 0 }, { "\"Offer\"", 0 }, { "\"OFFER\"", 0 },
		{ "\"off-er\"", 0 }, { "\"off_er\"", 0 }, { "\"off1\"", 0 }, { "\"off er\"", 0 },
		{ "\"\xc3\xa9\"", 0 }, { "\"offer\\n\"", 0 }, { "\"of\\u0066er\"", 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fields f = with(F_KIND, cases[i].v);
		int rc = parse_fields(&f);
		CHECKF(cases[i].ok ? rc == 0 : rc == EBADMSG, "kind %s: rc %d", cases[i].v, rc);
	}
out:;
}

static void t_ids(void)
{
	static const struct { const char *v; int ok; } cases[] = {
		{ "\"x\"", 1 }, { "\"A-Z.a_z0-9\"", 1 },
		{ "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", 1 },
		{ "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", 0 },
		{ "\"\"", 0 }, { "\"w 1\"", 0 }, { "\"w/1\"", 0 }, { "\"w\\n\"", 0 }, { "\"w\xc3\xa9\"", 0 },
		{ "\"w:1\"", 0 },
	};
	for (int field = F_FROM; field <= F_TO; field++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct fields f = with(field, cases[i].v);
			int rc = parse_fields(&f);
			CHECKF(cases[i].ok ? rc == 0 : rc == EBADMSG, "%s %s: rc %d",
			       field == F_FROM ? "from" : "to", cases[i].v, rc);
		}
	}
out:;
}

/* A JSON string value holding count copies of unit, then tail. */
static char *repeat_string(const char *unit, size_t count, const char *tail)
{
	size_t ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(ul * count + tl + 3), *p = s;
	if (!s)
		abort();
	*p++ = '"';
	for (size_t i = 0; i < count; i++, p += ul)
		memcpy(p, unit, ul);
	memcpy(p, tail, tl);
	p += tl;
	*p++ = '"';
	*p = '\0';
	return s;
}

static void t_payload_size(void)
{
	/* The bound counts bytes of the decoded string, not characters and
	 * not the JSON text. */
	static const struct { const char *unit; size_t count; const char *tail; size_t bytes; int ok; } cases[] = {
		{ "a", 16384, "", 16384, 1 },
		{ "a", 16385, "", 16385, 0 },
		{ "\xc3\xa9", 8192, "", 16384, 1 },            /* é, 2 bytes */
		{ "\xc3\xa9", 8192, "a", 16385, 0 },
		{ "\xe2\x82\xac", 5461, "a", 16384, 1 },       /* €, 3 bytes */
		{ "\xe2\x82\xac", 5462, "", 16386, 0 },
		{ "\xf0\x9f\x98\x80", 4096, "", 16384, 1 },    /* U+1F600, 4 bytes */
		{ "\xf0\x9f\x98\x80", 4096, "a", 16385, 0 },
		{ "\\u00e9", 8192, "", 16384, 1 },             /* escaped: 6 JSON bytes, 2 decoded */
		{ "\\u00e9", 8192, "a", 16385, 0 },
		{ "\\ud83d\\ude00", 4096, "", 16384, 1 },
		{ "\\n", 16384, "", 16384, 1 },
		{ "\\n", 16385, "", 16385, 0 },
		{ "", 0, "", 0, 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *pl = repeat_string(cases[i].unit, cases[i].count, cases[i].tail);
		struct fields f = with(F_PAYLOAD, pl);
		char *s = build(&f);
		struct publish_msg msg;
		struct wire_doc *doc = NULL;
		const char *why = NULL;
		int rc = wire_parse_publish(s, strlen(s), &msg, &doc, &why);
		size_t got = rc == 0 ? msg.payload_len : 0;
		int nul = rc == 0 ? msg.payload[msg.payload_len] == '\0' : 1;
		wire_doc_free(doc);
		free(s);
		free(pl);
		CHECKF(cases[i].ok ? rc == 0 : rc == EBADMSG, "case %zu (%zu bytes): rc %d", i, cases[i].bytes, rc);
		CHECKF(!cases[i].ok || got == cases[i].bytes, "case %zu: payload_len %zu, want %zu", i, got,
		       cases[i].bytes);
		CHECKF(nul, "case %zu: payload not NUL-terminated", i);
	}
out:;
}

static void t_psig(void)
{
	static const struct { const char *v; int ok; } cases[] = {
		{ "\"" PSIG "\"", 1 },
		{ "\"0000000000000000000000000000000000000000000000000000000000000000\"", 1 },
		{ "\"DD0BA0D066796EEC6C9435D8E9CE34DE040FE720EDE7633222458E4009981FF8\"", 0 },
		{ "\"Dd0ba0d066796eec6c9435d8e9ce34de040fe720ede7633222458e4009981ff8\"", 0 },
		{ "\"d0ba0d066796eec6c9435d8e9ce34de040fe720ede7633222458e4009981ff8\"", 0 },
		{ "\"" PSIG "0\"", 0 },
		{ "\"gd0ba0d066796eec6c9435d8e9ce34de040fe720ede7633222458e4009981ff8\"", 0 },
		{ "\" d0ba0d066796eec6c9435d8e9ce34de040fe720ede7633222458e4009981ff8\"", 0 },
		{ "\"\"", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fields f = with(F_PSIG, cases[i].v);
		int rc = parse_fields(&f);
		CHECKF(cases[i].ok ? rc == 0 : rc == EBADMSG, "psig %s: rc %d", cases[i].v, rc);
	}
out:;
}

static void t_extra_and_duplicate(void)
{
	static const char *const extras[] = {
		"\"x\":1", "\"id\":\"1\"", "\"From\":\"w1\"", "\"\":0",
		/* duplicates of each field, same value or not */
		"\"from\":\"w1\"", "\"from\":\"w9\"", "\"to\":\"w2\"", "\"epoch\":1764253800123",
		"\"kind\":\"offer\"", "\"payload\":\"hello\"", "\"psig\":\"" PSIG "\"",
	};
	for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
		struct fields f = GOOD;
		f.extra = extras[i];
		CHECKF(parse_fields(&f) == EBADMSG, "accepted extra %s", extras[i]);
	}
	/* A duplicate standing in for a missing field (six keys in all). */
	struct fields f = with(F_KIND, NULL);
	f.extra = "\"from\":\"w1\"";
	CHECK_EQ(parse_fields(&f), EBADMSG);
out:;
}

static void t_not_object(void)
{
	static const char *const bad[] = {
		"", " ", "[]", "null", "1", "\"x\"", "true", "{", "}", "{}",
		"[{\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"" PSIG "\"}]",
		/* trailing garbage after a good object */
		"{\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"" PSIG "\"} x",
		"{\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"" PSIG "\"}{}",
		/* JSON extensions */
		"{from:\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"" PSIG "\"}",
		"{'from':'w1',\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"" PSIG "\"}",
		"{\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"" PSIG "\",}",
		"{\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"\",\"psig\":\"" PSIG "\"}//",
	};
	struct publish_msg msg;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECKF(parse_text(bad[i], strlen(bad[i]), &msg) == EBADMSG, "accepted [%zu] %.60s", i, bad[i]);
	/* A NUL byte inside the counted body. */
	static const char nul[] = "{\"from\":\"w1\",\"to\":\"w2\",\"epoch\":1,\"kind\":\"offer\",\"payload\":\"\","
				  "\"psig\":\"" PSIG "\"}\0";
	CHECK_EQ(parse_text(nul, sizeof(nul) - 1, &msg), EBADMSG);
	CHECK_EQ(parse_text(nul, sizeof(nul) - 2, &msg), 0);
out:;
}

static void t_invalid_utf8(void)
{
	static const char *const bad_payloads[] = {
		"\"\xff\"", "\"a\xfe\"", "\"\xc0\xaf\"",        /* invalid byte, overlong '/' */
		"\"\xe0\x80\xaf\"", "\"\xed\xa0\x80\"",        /* overlong, encoded surrogate */
		"\"\xe2\x82\"", "\"\xc3\"", "\"\x80\"",        /* truncated, lone continuation */
		"\"\xf4\x90\x80\x80\"",                         /* above U+10FFFF */
		"\"\\ud800\"", "\"\\ude00\"", "\"\\ud83dx\"",   /* lone surrogates in escapes */
		"\"a\x01\"", "\"\t\"",                           /* raw control characters */
	};
	for (size_t i = 0; i < sizeof(bad_payloads) / sizeof(bad_payloads[0]); i++) {
		struct fields f = with(F_PAYLOAD, bad_payloads[i]);
		CHECKF(parse_fields(&f) == EBADMSG, "accepted payload [%zu]", i);
	}
	struct fields f = GOOD;
	f.extra = "\"\xff\":1";
	CHECK_EQ(parse_fields(&f), EBADMSG);
	f = with(F_FROM, "\"w\xff\"");
	CHECK_EQ(parse_fields(&f), EBADMSG);
out:;
}

static void t_body_size(void)
{
	/* 65536 bytes is allowed (a valid body padded with spaces), one more
	 * is EMSGSIZE (413 too_large), never parsed. */
	char *s = malloc(PUBLISH_BODY_MAX + 2), *g = build(&GOOD);
	struct publish_msg msg;
	CHECK(s && g);
	size_t gl = strlen(g);
	memset(s, ' ', PUBLISH_BODY_MAX + 1);
	memcpy(s, g, gl);
	s[PUBLISH_BODY_MAX + 1] = '\0';
	CHECK_EQ(parse_text(s, PUBLISH_BODY_MAX, &msg), 0);
	CHECK_STREQ(msg.kind, "offer");
	CHECK_EQ(parse_text(s, PUBLISH_BODY_MAX + 1, &msg), EMSGSIZE);
	/* A body that is large because of escapes but decodes to 16384 bytes:
	 * 16384 "\u0061" escapes are 98304 bytes of JSON, so too large. */
	char *pl = repeat_string("\\u0061", 16384, "");
	struct fields f = with(F_PAYLOAD, pl);
	char *big = build(&f);
	int rc = parse_text(big, strlen(big), &msg);
	free(big);
	free(pl);
	CHECK_EQ(rc, EMSGSIZE);
out:
	free(s);
	free(g);
}

TEST_SUITE(wire_suite,
	{ "wire_valid", t_valid },
	{ "wire_missing_field", t_missing_field },
	{ "wire_mistyped_field", t_mistyped },
	{ "wire_epoch_bounds", t_epoch },
	{ "wire_kind_rules", t_kind },
	{ "wire_peer_ids", t_ids },
	{ "wire_payload_size", t_payload_size },
	{ "wire_psig_rules", t_psig },
	{ "wire_extra_and_duplicate_keys", t_extra_and_duplicate },
	{ "wire_not_an_object", t_not_object },
	{ "wire_invalid_utf8", t_invalid_utf8 },
	{ "wire_body_size", t_body_size });
