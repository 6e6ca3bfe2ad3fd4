/* What coturn 4.6.1 still calls from OpenSSL 1.x and OpenSSL 3 removed.
 * Only FIPS_mode(): ns_turn_msg.c asks it before hashing the long-term
 * key with MD5. Must stay a faithful equivalent, never a behaviour change;
 * nothing else goes here unless the link fails without it. */
#include <openssl/evp.h>

int FIPS_mode(void);

/* OpenSSL 3 migration guide: FIPS_mode() becomes
 * EVP_default_properties_is_fips_enabled(NULL). */
int FIPS_mode(void)
{
	return EVP_default_properties_is_fips_enabled(NULL);
}
