/* conf: option values in Fluentd's notation.
 * Sizes: an integer with an optional k, m, g or t suffix (powers of 1024,
 * either case): "8m", "256k", "1048576".  Durations: a number of seconds
 * with an optional s, m, h or d suffix: "10s", "1h", "0.5", "1.5m".
 * The whole string must be a value; "8mb" or "" is an error. */
#ifndef LF_CONF_H
#define LF_CONF_H

#include <stddef.h>
#include <stdint.h>

int conf_size(const char *s, uint64_t *out);		/* 0 or -1 */
int conf_duration(const char *s, double *seconds);	/* 0 or -1 */
int conf_uint(const char *s, uint64_t max, uint64_t *out);
int conf_bool(const char *s, int *out);	/* true/false/yes/no/1/0/on/off */

int conf_number(const char *s, double *out);	/* plain decimal: "1.5" */

/* A word from a fixed set: a table of names and values, ended by
 * { NULL, 0 }.  Several names may give one value. */
struct conf_name {
	const char *name;
	int value;
};
int conf_enum(const struct conf_name *t, const char *s, int *out);
/* The names of t as "a, b or c", cut short to fit. */
void conf_enum_list(const struct conf_name *t, char *out, size_t outlen);

/* For option parsing, the one way every tool and lib/consume parse option
 * values: the value, or a usage error and exit 64 (sysexits EX_USAGE),
 * always worded "--OPT: WHAT: 'ARG'", e.g.
 *	--retry-wait: not a duration (e.g. 10s, 1.5m, 1h, 3d): 'abc'
 *	--flush-mode: must be default, interval, immediate or lazy: 'x'
 * opt is the long option's name without the dashes. */
uint64_t conf_opt_size(const char *opt, const char *arg);
double conf_opt_duration(const char *opt, const char *arg);
uint64_t conf_opt_uint(const char *opt, const char *arg, uint64_t max);
double conf_opt_number(const char *opt, const char *arg);
/* Bare (arg NULL: an optional_argument given as --opt) means true, so a
 * boolean option is a flag too; =BOOL says which. */
int conf_opt_bool(const char *opt, const char *arg);
int conf_opt_enum(const char *opt, const char *arg, const struct conf_name *t);

#endif
