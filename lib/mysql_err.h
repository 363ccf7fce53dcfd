/* mysql_err: what a MariaDB error number means for a chunk.
 *
 * The classes, from the error numbers MariaDB 10.11 and Connector/C 3.3
 * give (measured; ../shared/research/outputs.md 1.12):
 *	MYSQL_ERR_CONN	the connection is gone or never came: 2002, 2003,
 *			2006, 2013, 2055 and every other client error
 *			(2000-2999); reconnect, retry with the backoff
 *	MYSQL_ERR_TEMP	the server says "try again": deadlock 1213, lock
 *			wait timeout 1205, too many connections 1040 1203,
 *			shutdown 1053, killed 1927, statement timeout 1969,
 *			disk full 1021 1114 1041, read only 1836 1290;
 *			access denied 1044 1045 1142 1227 1698 and an
 *			unknown database 1049, which an operator fixes on
 *			the server, not in the chunk: retried, logged
 *	MYSQL_ERR_NOTABLE  1146, the table does not exist: permanent, unless
 *			lf-mysql may create it
 *	MYSQL_ERR_PERM	every other server error: the chunk's data or the
 *			configuration is wrong for this table (1054 bad
 *			column, 1048 NOT NULL, 1136, 1406, 1366, 1292,
 *			1264, 4025 invalid JSON, 1062, 1064, ...); retrying
 *			would stall the spool for ever (out_mysql_bulk
 *			does), so the chunk goes to dead/ with the text. */
#ifndef LF_MYSQL_ERR_H
#define LF_MYSQL_ERR_H

enum mysql_err_class {
	MYSQL_ERR_CONN,
	MYSQL_ERR_TEMP,
	MYSQL_ERR_NOTABLE,
	MYSQL_ERR_PERM
};

enum mysql_err_class mysql_err_class(unsigned errnum);
const char *mysql_err_class_name(enum mysql_err_class c);

#endif
