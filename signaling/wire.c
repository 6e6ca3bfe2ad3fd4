/* Publish body parsing: strict JSON (jansson) with every field bounded as
 * CONTRACT section 2 says. Must not allocate beyond the parsed document. */
#include "signaling/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

struct wire_doc {
	json_t *root;
};

bool kind_valid(const char *s, size_t len)
{
	if (len < 1 || len > KIND_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 'a' || s[i] > 'z')
			return false;
	return true;
}

static bool hex64(const char *s, size_t len)
{
	if (len != SIG_HEX_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int get_string(json_t *root, const char *key, const char **out, size_t *len)
{
	json_t *v = json_object_get(root, key);
	if (!v || !json_is_string(v))
		return -1;
	*out = json_string_value(v);
	*len = json_string_length(v);
	return 0;
}

int wire_parse_publish(const char *body, size_t len, struct publish_msg *msg,
		       struct wire_doc **doc, const char **why)
{
	*doc = NULL;
	if (len > PUBLISH_BODY_MAX) {
		*why = "body too large";
		return EMSGSIZE;
	}
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		*why = "body is not valid JSON";
		return EBADMSG;
	}
	const char *s;
	size_t slen;
	if (!json_is_object(root)) {
		*why = "body must be a JSON object";
		goto bad;
	}
	if (json_object_size(root) != 6) {
		*why = "body must hold exactly from, to, epoch, kind, payload, psig";
		goto bad;
	}
	if (get_string(root, "from", &s, &slen) || !id_valid(s, slen)) {
		*why = "from must be a peer id";
		goto bad;
	}
	memcpy(msg->from, s, slen + 1);
	if (get_string(root, "to", &s, &slen) || !id_valid(s, slen)) {
		*why = "to must be a peer id";
		goto bad;
	}
	memcpy(msg->to, s, slen + 1);
	json_t *epoch = json_object_get(root, "epoch");
	if (!epoch || !json_is_integer(epoch) || json_integer_value(epoch) < 1 ||
	    (uint64_t)json_integer_value(epoch) > EPOCH_MAX) {
		*why = "epoch must be an integer 1..2^53-1";
		goto bad;
	}
	msg->epoch = (uint64_t)json_integer_value(epoch);
	if (get_string(root, "kind", &s, &slen) || !kind_valid(s, slen)) {
		*why = "kind must match ^[a-z]{1,16}$";
		goto bad;
	}
	memcpy(msg->kind, s, slen + 1);
	if (get_string(root, "payload", &s, &slen) || slen > PAYLOAD_MAX) {
		*why = "payload must be a string of at most 16384 bytes";
		goto bad;
	}
	msg->payload = s;
	msg->payload_len = slen;
	if (get_string(root, "psig", &s, &slen) || !hex64(s, slen)) {
		*why = "psig must be 64 lower-case hex characters";
		goto bad;
	}
	memcpy(msg->psig, s, slen + 1);

	struct wire_doc *d = malloc(sizeof(*d));
	if (!d) {
		json_decref(root);
		*why = "out of memory";
		return ENOMEM;
	}
	d->root = root;
	*doc = d;
	return 0;
bad:
	json_decref(root);
	return EBADMSG;
}

void wire_doc_free(struct wire_doc *doc)
{
	if (!doc)
		return;
	json_decref(doc->root);
	free(doc);
}
