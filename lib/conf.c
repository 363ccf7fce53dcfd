#include <ctype.h>
#include <errno.h>
#include <math.h>
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

uint64_t
conf_opt_size(const char *opt, const char *arg)
{
	uint64_t v;

	if (conf_size(arg, &v) == -1)
		log_fatal(EX_USAGE, "--%s: bad size \"%s\"", opt, arg);
	return v;
}

double
conf_opt_duration(const char *opt, const char *arg)
{
	double v;

	if (conf_duration(arg, &v) == -1)
		log_fatal(EX_USAGE, "--%s: bad duration \"%s\"", opt, arg);
	return v;
}

uint64_t
conf_opt_uint(const char *opt, const char *arg, uint64_t max)
{
	uint64_t v;

	if (conf_uint(arg, max, &v) == -1)
		log_fatal(EX_USAGE, "--%s: bad number \"%s\"", opt, arg);
	return v;
}
