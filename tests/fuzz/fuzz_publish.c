/* libFuzzer target: wire_parse_publish (signaling/wire.c, linked as is)
 * on arbitrary bytes. On success every field must keep the bounds of
 * CONTRACT section 2, and the parsed message, written back out as JSON
 * and parsed again, must come back identical. abort() on any violation.
 * Owns only the harness; no I/O to stub. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "signaling/wire.h"

/* Our own reading of CONTRACT section 2, independent of the code under
 * test: ^[A-Za-z0-9._-]{1,64}$ and ^[a-z]{1,16}$. */
static int peer_id_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static int kind_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 16)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 'a' || s[i] > 'z')
			return 0;
	return 1;
}

static int lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static void check_msg(const struct publish_msg *m)
{
	if (!memchr(m->from, '\0', sizeof(m->from)) || !peer_id_ok(m->from))
		abort();
	if (!memchr(m->to, '\0', sizeof(m->to)) || !peer_id_ok(m->to))
		abort();
	if (!memchr(m->kind, '\0', sizeof(m->kind)) || !kind_ok(m->kind))
		abort();
	if (m->epoch < 1 || m->epoch > (UINT64_C(1) << 53) - 1)
		abort();
	if (!m->payload || m->payload_len > 16384 || m->payload[m->payload_len] != '\0')
		abort();
	if (!memchr(m->psig, '\0', sizeof(m->psig)) || strlen(m->psig) != SIG_HEX_LEN ||
	    !lower_hex(m->psig, SIG_HEX_LEN))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct publish_msg msg, again;
	struct wire_doc *doc = (struct wire_doc *)&msg, *doc2 = NULL;
	const char *why = NULL;
	memset(&msg, 0xa5, sizeof(msg));

	int rc = wire_parse_publish((const char *)data, size, &msg, &doc, &why);
	if (rc) {
		if (doc != NULL || !why)
			abort();
		if (size > PUBLISH_BODY_MAX ? rc != EMSGSIZE : rc != EBADMSG && rc != ENOMEM)
			abort();
		return 0;
	}
	if (!doc || size > PUBLISH_BODY_MAX)
		abort();
	check_msg(&msg);

	/* Round trip through jansson's writer. */
	json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s%,s:s}", "from", msg.from, "to", msg.to, "epoch",
			      (json_int_t)msg.epoch, "kind", msg.kind, "payload", msg.payload,
			      msg.payload_len, "psig", msg.psig);
	if (!o)
		abort();
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		abort();
	size_t tlen = strlen(text);
	if (tlen <= PUBLISH_BODY_MAX) {
		memset(&again, 0x5a, sizeof(again));
		if (wire_parse_publish(text, tlen, &again, &doc2, &why) != 0)
			abort();
		if (strcmp(again.from, msg.from) || strcmp(again.to, msg.to) ||
		    strcmp(again.kind, msg.kind) || strcmp(again.psig, msg.psig) ||
		    again.epoch != msg.epoch || again.payload_len != msg.payload_len ||
		    memcmp(again.payload, msg.payload, msg.payload_len))
			abort();
		wire_doc_free(doc2);
	}
	free(text);
	wire_doc_free(doc);
	return 0;
}
