#include <stddef.h>

#include "mysql_err.h"

static const unsigned temp_codes[] = {
	1205, 1213,			/* lock wait timeout, deadlock */
	1040, 1203,			/* too many connections */
	1053, 1927, 1969,		/* shutdown, killed, statement timeout */
	1021, 1114, 1041,		/* disk full, table full, out of memory */
	1836, 1290,			/* read only */
	1044, 1045, 1142, 1227, 1698,	/* access denied */
	1049,				/* unknown database */
};

enum mysql_err_class
mysql_err_class(unsigned errnum)
{
	size_t i;

	if (errnum >= 2000 && errnum < 3000)
		return MYSQL_ERR_CONN;
	if (errnum == 1146)
		return MYSQL_ERR_NOTABLE;
	for (i = 0; i < sizeof temp_codes / sizeof temp_codes[0]; i++)
		if (temp_codes[i] == errnum)
			return MYSQL_ERR_TEMP;
	return MYSQL_ERR_PERM;
}

const char *
mysql_err_class_name(enum mysql_err_class c)
{
	static const char *const names[] = {
		"connection", "temporary", "no such table", "permanent"
	};

	return (unsigned)c < 4 ? names[c] : "?";
}
