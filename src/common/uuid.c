/* uuid.c: UUID strings over libuuid (lower case, canonical 8-4-4-4-12 form). */
#include "common/common.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <uuid/uuid.h>

void common_uuid_generate(char out[COMMON_UUID_STR_LEN])
{
	uuid_t u;

	uuid_generate_random(u);
	uuid_unparse_lower(u, out);
}

int common_uuid_parse(const char *s, uint8_t bytes[16])
{
	uuid_t u;

	if (!s || strlen(s) != 36)
		return -EINVAL;
	if (uuid_parse(s, u) != 0)
		return -EINVAL;
	if (bytes)
		memcpy(bytes, u, 16);
	return 0;
}

void common_uuid_unparse(const uint8_t bytes[16], char out[COMMON_UUID_STR_LEN])
{
	uuid_unparse_lower(bytes, out);
}
