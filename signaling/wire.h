/* Signaling message bodies (CONTRACT section 2): parsing and validating
 * a publish body, the bounds every field must keep. Shared by the
 * coordinator (parse) and the client (build). */
#ifndef MESH_SIGNALING_WIRE_H
#define MESH_SIGNALING_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "signaling/auth.h"

#define PUBLISH_BODY_MAX 65536
#define PAYLOAD_MAX 16384
#define KIND_MAX 16
#define EPOCH_MAX ((UINT64_C(1) << 53) - 1)
#define POLL_WAIT_MAX_S 30
#define POLL_WAIT_DEFAULT_S 25
#define POLL_BATCH_MAX 256
/* An answer stops adding messages past this many payload bytes (at least
 * one message always goes): the contract allows fewer than 256, and an
 * answer waiting to be sent must not hold unbounded memory. */
#define POLL_ANSWER_BYTES_MAX (512 * 1024)
#define MAILBOX_CAP 1024
#define MSG_ID_MAX 48

struct publish_msg {
	char from[PEER_ID_MAX + 1];
	char to[PEER_ID_MAX + 1];
	char kind[KIND_MAX + 1];
	uint64_t epoch;
	char psig[SIG_HEX_LEN + 1];
	const char *payload; /* borrowed from the parsed document, NUL-terminated */
	size_t payload_len;
};

struct wire_doc; /* owns the parsed JSON the borrowed payload points into */

/* Parses and validates a publish body. On success *doc must be released
 * with wire_doc_free(). Returns 0, or EBADMSG (invalid), EMSGSIZE (over
 * PUBLISH_BODY_MAX) or ENOMEM, with a short reason in *why. */
int wire_parse_publish(const char *body, size_t len, struct publish_msg *msg,
		       struct wire_doc **doc, const char **why);
void wire_doc_free(struct wire_doc *doc);

bool kind_valid(const char *s, size_t len);

#endif
