/* libFuzzer harness over the signaling client's parsers: the HTTP
 * response parser (whole, then split at a point the input picks, which
 * must agree), and the poll, coordinators, TURN and error answer parsers
 * and the negotiation's payload decoders on the same bytes. Links the
 * real sources; no I/O. Run with `make fuzz-signaling`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/negotiate.h"
#include "client/sig_http.h"
#include "client/sig_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shttp_parser *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	size_t used = 0, u1 = 0, u2 = 0;
	int ra, rb;

	if (!a || !b)
		abort();
	/* One call. */
	shttp_parser_init(a, 4096, false);
	ra = shttp_parse(a, data, size, &used);
	if (ra == SHTTP_MORE)
		ra = shttp_parse_eof(a);
	/* Two calls, split where the first byte says. */
	size_t cut = size ? data[0] % (size + 1) : 0;
	shttp_parser_init(b, 4096, false);
	rb = shttp_parse(b, data, cut, &u1);
	if (rb == SHTTP_MORE)
		rb = shttp_parse(b, data + cut, size - cut, &u2);
	if (rb == SHTTP_MORE)
		rb = shttp_parse_eof(b);
	if ((ra == SHTTP_DONE) != (rb == SHTTP_DONE))
		abort();
	if (ra == SHTTP_DONE) {
		if (a->status != b->status || a->body_len != b->body_len ||
		    (a->body_len && memcmp(a->body, b->body, a->body_len)) ||
		    a->body_len > 4096)
			abort();
		for (size_t i = 0; i < a->nhdrs; i++)
			(void)shttp_header(a, "content-length");
	}
	shttp_parser_free(a);
	shttp_parser_free(b);
	free(a);
	free(b);

	/* The JSON answer parsers and payload decoders. */
	const char *s = (const char *)data;
	struct sig_poll *p = malloc(sizeof(*p));
	if (!p)
		abort();
	if (!sig_parse_poll(s, size, p)) {
		for (size_t i = 0; i < p->n; i++) {
			if (p->msgs[i].payload_len > PAYLOAD_MAX ||
			    strlen(p->msgs[i].payload) != p->msgs[i].payload_len)
				abort();
		}
		sig_poll_free(p);
	}
	free(p);
	struct sig_coord_info *ci = malloc(sizeof(*ci) * 4);
	size_t n = 0;
	if (!ci)
		abort();
	(void)sig_parse_coordinators(s, size, ci, 4, &n);
	free(ci);
	struct sig_turn t;
	(void)sig_parse_turn(s, size, &t);
	char code[64];
	uint64_t cur;
	(void)sig_parse_error(s, size, code, sizeof(code), &cur);
	char *ice = NULL, fp[NEG_FP_LEN + 1];
	size_t ilen = 0;
	if (!neg_desc_decode(s, size, &ice, &ilen, fp)) {
		if (!ilen || ilen > NEG_ICE_MAX || strlen(fp) != NEG_FP_LEN)
			abort();
		mem_deref(ice);
	}
	uint64_t seen;
	(void)neg_reneg_decode(s, size, &seen);
	return 0;
}
