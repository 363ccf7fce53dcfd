#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sysexits.h>

#include "conf.h"
#include "log.h"

int
conf_uint(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

int
conf_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case '\0': break;
	case 'k': shift = 10; end++; break;
	case 'm': shift = 20; end++; break;
	case 'g': shift = 30; end++; break;
	case 't': shift = 40; end++; break;
	default: return -1;
	}
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int
conf_duration(const char *s, double *seconds)
{
	char *end;
	double v, mul = 1;

	if (!isdigit((unsigned char)*s) && *s != '.')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case '\0': break;
	case 's': end++; break;
	case 'm': mul = 60; end++; break;
	case 'h': mul = 3600; end++; break;
	case 'd': mul = 86400; end++; break;
	default: return -1;
	}
	if (*end != '\0' || !isfinite(v * mul))
		return -1;
	*seconds = v * mul;
	return 0;
}

int
conf_bool(const char *s, int *out)
{
	static const char *yes[] = { "true", "yes", "on", "1" };
	static const char *no[] = { "false", "no", "off", "0" };
	size_t i;

	for (i = 0; i < sizeof yes / sizeof *yes; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return *out = 1, 0;
		if (strcasecmp(s, no[i]) == 0)
			return *out = 0, 0;
	}
	return -1;
}

/* A plain decimal number, the whole string. */
int
conf_number(const char *s, double *out)
{
	char *end;
	double v;

	if (!isdigit((unsigned char)*s) && *s != '.')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end != '\0' || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

int
conf_enum(const struct conf_name *t, const char *s, int *out)
{
	for (; t->name != NULL; t++)
		if (strcmp(s, t->name) == 0)
			return *out = t->value, 0;
	return -1;
}

void
conf_enum_list(const struct conf_name *t, char *out, size_t outlen)
{
	size_t n = 0;
	int len;

	if (outlen == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0; t[i].name != NULL && n < outlen; i++) {
		len = snprintf(out + n, outlen - n, "%s%s", i == 0 ? "" :
		    t[i + 1].name == NULL ? " or " : ", ", t[i].name);
		if (len < 0)
			break;
		n += (size_t)len;
	}
}

static void __attribute__((noreturn))
opt_fatal(const char *opt, const char *what, const char *arg)
{
	log_fatal(EX_USAGE, "--%s: %s: '%s'", opt, what, arg);
}

uint64_t
conf_opt_size(const char *opt, const char *arg)
{
	uint64_t v;

	if (conf_size(arg, &v) == -1)
		opt_fatal(opt, "not a size (e.g. 256k, 8m, 1g)", arg);
	return v;
}

double
conf_opt_duration(const char *opt, const char *arg)
{
	double v;

	if (conf_duration(arg, &v) == -1)
		opt_fatal(opt, "not a duration (e.g. 10s, 1.5m, 1h, 3d)", arg);
	return v;
}

uint64_t
conf_opt_uint(const char *opt, const char *arg, uint64_t max)
{
	char what[64];
	uint64_t v;

	if (conf_uint(arg, max, &v) == -1) {
		snprintf(what, sizeof what, "not a whole number from 0 to %llu",
		    (unsigned long long)max);
		opt_fatal(opt, what, arg);
	}
	return v;
}

double
conf_opt_number(const char *opt, const char *arg)
{
	double v;

	if (conf_number(arg, &v) == -1)
		opt_fatal(opt, "not a number", arg);
	return v;
}

int
conf_opt_bool(const char *opt, const char *arg)
{
	int v;

	if (arg == NULL)
		return 1;
	if (conf_bool(arg, &v) == -1)
		opt_fatal(opt, "not a boolean (true or false)", arg);
	return v;
}

int
conf_opt_enum(const char *opt, const char *arg, const struct conf_name *t)
{
	char what[256];
	int v;

	if (conf_enum(t, arg, &v) == -1) {
		memcpy(what, "must be ", 8);
		conf_enum_list(t, what + 8, sizeof what - 8);
		opt_fatal(opt, what, arg);
	}
	return v;
}
