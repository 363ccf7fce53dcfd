/* conf: option values in Fluentd's notation.
 * Sizes: an integer with an optional k, m, g or t suffix (powers of 1024,
 * either case): "8m", "256k", "1048576".  Durations: a number of seconds
 * with an optional s, m, h or d suffix: "10s", "1h", "0.5", "1.5m".
 * The whole string must be a value; "8mb" or "" is an error. */
#ifndef LF_CONF_H
#define LF_CONF_H

#include <stdint.h>

int conf_size(const char *s, uint64_t *out);		/* 0 or -1 */
int conf_duration(const char *s, double *seconds);	/* 0 or -1 */
int conf_uint(const char *s, uint64_t max, uint64_t *out);
int conf_bool(const char *s, int *out);	/* true/false/yes/no/1/0/on/off */

/* For option parsing: the value, or a usage error naming --opt and exit
 * 64 (sysexits EX_USAGE), so every tool words it the same way. */
uint64_t conf_opt_size(const char *opt, const char *arg);
double conf_opt_duration(const char *opt, const char *arg);
uint64_t conf_opt_uint(const char *opt, const char *arg, uint64_t max);

#endif
