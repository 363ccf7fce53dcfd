#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "timefmt.h"

#define TF_MAXLEN	256	/* a time field longer than this is not one */

/* The fields a format gives, to fill the others as Ruby does. */
#define TF_YEAR		0x01
#define TF_MON		0x02
#define TF_MDAY		0x04
#define TF_YDAY		0x08
#define TF_HOUR		0x10
#define TF_MIN		0x20
#define TF_SEC		0x40
#define TF_FRAC		0x80

struct tf {
	struct tm tm;
	unsigned given;
	int zoned;		/* off is set: the input named its zone */
	long off;		/* seconds east of UTC */
	int epoch_set;		/* %s gave the time outright */
	long long epoch;
	uint32_t nsec;
};

static unsigned
tf_fields(int c)
{
	switch (c) {
	case 'Y': case 'y': case 'C': case 'G': case 'g':
		return TF_YEAR;
	case 'm': case 'b': case 'B': case 'h':
		return TF_MON;
	case 'd': case 'e':
		return TF_MDAY;
	case 'j':
		return TF_YDAY;
	case 'H': case 'I': case 'k': case 'l':
		return TF_HOUR;
	case 'M':
		return TF_MIN;
	case 'S':
		return TF_SEC;
	case 'R':
		return TF_HOUR | TF_MIN;
	case 'T': case 'r': case 'X':
		return TF_HOUR | TF_MIN | TF_SEC;
	case 'D': case 'F': case 'x':
		return TF_YEAR | TF_MON | TF_MDAY;
	case 'c':
		return TF_YEAR | TF_MON | TF_MDAY | TF_HOUR | TF_MIN | TF_SEC;
	}
	return 0;
}

/* Exactly len digits. */
static int
tf_num(const char **pp, const char *end, int len, int *v)
{
	const char *p = *pp;

	if (end - p < len)
		return -1;
	for (*v = 0; len > 0; len--, p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		*v = *v * 10 + (*p - '0');
	}
	*pp = p;
	return 0;
}

/* 1 to maxw digits after a decimal point, as nanoseconds; with eat,
 * digits past maxw are read and dropped. */
static int
tf_frac(const char **pp, const char *end, int maxw, int eat, uint32_t *ns)
{
	const char *p = *pp;
	uint32_t v = 0, scale = 1000000000;
	int w;

	for (w = 0; w < maxw && p < end && isdigit((unsigned char)*p); w++) {
		scale /= 10;
		v += (uint32_t)(*p++ - '0') * scale;
	}
	if (w == 0)
		return -1;
	while (eat && p < end && isdigit((unsigned char)*p))
		p++;
	*ns = v;
	*pp = p;
	return 0;
}

static int
tf_zone(const char **pp, const char *end, long *off)
{
	const char *p = *pp;
	int sign, hh, mm = 0;

	if (p < end && (*p == 'Z' || *p == 'z')) {
		*off = 0;
		*pp = p + 1;
		return 0;
	}
	if (end - p >= 3 && (strncasecmp(p, "UTC", 3) == 0 ||
	    strncasecmp(p, "GMT", 3) == 0)) {
		p += 3;
		if (p == end || (*p != '+' && *p != '-')) {
			*off = 0;
			*pp = p;
			return 0;
		}
	}
	if (p >= end || (*p != '+' && *p != '-'))
		return -1;
	sign = *p++ == '-' ? -1 : 1;
	if (tf_num(&p, end, 2, &hh) == -1)
		return -1;
	if (p < end && *p == ':') {
		p++;
		if (tf_num(&p, end, 2, &mm) == -1)
			return -1;
	} else if (end - p >= 2 && isdigit((unsigned char)p[0]) &&
	    isdigit((unsigned char)p[1]))
		(void)tf_num(&p, end, 2, &mm);
	if (hh > 23 || mm > 59)
		return -1;
	*off = sign * (hh * 3600L + mm * 60L);
	*pp = p;
	return 0;
}

static int
tf_epochdigits(const char **pp, const char *end, long long *v)
{
	const char *p = *pp;

	for (*v = 0; p < end && isdigit((unsigned char)*p); p++) {
		*v = *v * 10 + (*p - '0');
		if (*v > UINT32_MAX)
			return -1;
	}
	if (p == *pp)
		return -1;
	*pp = p;
	return 0;
}

/* A conversion strptime(3) lacks or would get wrong for us. */
static int
tf_special(struct tf *t, const char **pp, const char *end, int c, int width)
{
	switch (c) {
	case 'N':
		if (width > 9)
			return -1;
		t->given |= TF_FRAC;
		return tf_frac(pp, end, width ? width : 9, width == 0, &t->nsec);
	case 'L':
		t->given |= TF_FRAC;
		return tf_frac(pp, end, 3, 0, &t->nsec);
	case 's':
		t->epoch_set = 1;
		return tf_epochdigits(pp, end, &t->epoch);
	case 'z':
	case 'Z':
		t->zoned = 1;
		return tf_zone(pp, end, &t->off);
	}
	return -1;
}

/* Run the strptime(3) conversions gathered so far.  They go in one call
 * so that strptime's own state (%I with %p) spans them. */
static int
tf_flush(struct tf *t, const char **pp, char *sub, size_t *sl)
{
	const char *q;

	if (*sl == 0)
		return 0;
	sub[*sl] = '\0';
	*sl = 0;
	if ((q = strptime(*pp, sub, &t->tm)) == NULL)
		return -1;
	*pp = q;
	return 0;
}

static const char tf_months[12][4] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec",
};
static const char tf_days[7][4] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat",
};

/* 1 to maxw digits, as strptime(3) reads %d, %H ... */
static int
tf_upto(const char **pp, const char *end, int maxw, int lo, int hi, int *v)
{
	const char *p = *pp;
	int w;

	while (p < end && *p == ' ')
		p++;	/* strptime skips blanks before a number */
	for (*v = 0, w = 0; w < maxw && p < end && isdigit((unsigned char)*p);
	    w++)
		*v = *v * 10 + (*p++ - '0');
	if (w == 0 || *v < lo || *v > hi)
		return -1;
	*pp = p;
	return 0;
}

/* An English month or day name, abbreviated or full, any case. */
static int
tf_name(const char **pp, const char *end, const char (*names)[4], int nn,
    const char *const *full, int *v)
{
	const char *p = *pp;
	size_t fl;
	int i;

	if (end - p < 3)
		return -1;
	for (i = 0; i < nn; i++)
		if (strncasecmp(p, names[i], 3) == 0)
			break;
	if (i == nn)
		return -1;
	fl = strlen(full[i]);
	if ((size_t)(end - p) >= fl && strncasecmp(p, full[i], fl) == 0)
		p += fl;
	else
		p += 3;
	*v = i;
	*pp = p;
	return 0;
}

static const char *const tf_fullmonths[12] = {
	"january", "february", "march", "april", "may", "june", "july",
	"august", "september", "october", "november", "december",
};
static const char *const tf_fulldays[7] = {
	"sunday", "monday", "tuesday", "wednesday", "thursday", "friday",
	"saturday",
};

/* The conversions most log formats use, read here without strptime(3)
 * and its C-string copy (the hot path of a parser): 0, -1 on a
 * mismatch, or 1 if the format has a conversion this walker does not
 * know, for tf_format to take. */
static int
tf_native(struct tf *t, const char *p, const char *end, const char *f)
{
	struct tm *tm = &t->tm;
	const char *c;
	int v, width;

	for (; *f != '\0'; f++) {
		if (isspace((unsigned char)*f)) {
			while (p < end && isspace((unsigned char)*p))
				p++;
			continue;
		}
		if (*f != '%') {
			if (p == end || *p != *f)
				return -1;
			p++;
			continue;
		}
		c = f + 1;
		for (width = 0; isdigit((unsigned char)*c); c++)
			width = width * 10 + (*c - '0');
		if (width > 0 && *c != 'N')
			return 1;
		switch (*c) {
		case 'Y':
			if (tf_upto(&p, end, 4, 0, 9999, &v) == -1)
				return -1;
			tm->tm_year = v - 1900;
			break;
		case 'y':
			if (tf_upto(&p, end, 2, 0, 99, &v) == -1)
				return -1;
			tm->tm_year = v < 69 ? v + 100 : v;
			break;
		case 'm':
			if (tf_upto(&p, end, 2, 1, 12, &v) == -1)
				return -1;
			tm->tm_mon = v - 1;
			break;
		case 'd': case 'e':
			if (tf_upto(&p, end, 2, 1, 31, &tm->tm_mday) == -1)
				return -1;
			break;
		case 'H': case 'k':
			if (tf_upto(&p, end, 2, 0, 23, &tm->tm_hour) == -1)
				return -1;
			break;
		case 'M':
			if (tf_upto(&p, end, 2, 0, 59, &tm->tm_min) == -1)
				return -1;
			break;
		case 'S':
			if (tf_upto(&p, end, 2, 0, 61, &tm->tm_sec) == -1)
				return -1;
			break;
		case 'b': case 'B': case 'h':
			if (tf_name(&p, end, tf_months, 12, tf_fullmonths,
			    &tm->tm_mon) == -1)
				return -1;
			break;
		case 'a': case 'A':
			if (tf_name(&p, end, tf_days, 7, tf_fulldays, &v) == -1)
				return -1;
			break;	/* Ruby checks nothing against it either */
		case 'T':
			if (tf_upto(&p, end, 2, 0, 23, &tm->tm_hour) == -1 ||
			    p == end || *p++ != ':' ||
			    tf_upto(&p, end, 2, 0, 59, &tm->tm_min) == -1 ||
			    p == end || *p++ != ':' ||
			    tf_upto(&p, end, 2, 0, 61, &tm->tm_sec) == -1)
				return -1;
			break;
		case 'N': case 'L': case 'z': case 'Z': case 's':
			if (tf_special(t, &p, end, *c, width) == -1)
				return -1;
			break;
		case '%':
			if (p == end || *p++ != '%')
				return -1;
			break;
		default:
			return 1;
		}
		t->given |= tf_fields(*c);
		f = c;
	}
	while (p < end && isspace((unsigned char)*p))
		p++;
	return p == end ? 0 : -1;
}

static int
tf_format(struct tf *t, const char *in, size_t n, const char *fmt)
{
	char sub[TF_MAXLEN];
	const char *p = in, *end = in + n, *f = fmt, *c;
	size_t sl = 0, cl;
	int width;

	while (*f != '\0') {
		if (*f != '%') {
			if (sl + 1 >= sizeof sub)
				return -1;
			sub[sl++] = *f++;
			continue;
		}
		c = f + 1;
		while (*c != '\0' && strchr("-_0^#:", *c) != NULL)
			c++;
		for (width = 0; isdigit((unsigned char)*c); c++)
			if (width < 100)
				width = width * 10 + (*c - '0');
		if (*c == 'E' || *c == 'O')
			c++;
		if (*c == '\0')
			return -1;
		if (strchr("NLszZ", *c) != NULL) {
			if (tf_flush(t, &p, sub, &sl) == -1 ||
			    tf_special(t, &p, end, *c, width) == -1)
				return -1;
		} else {
			cl = (size_t)(c + 1 - f);
			if (sl + cl >= sizeof sub)
				return -1;
			memcpy(sub + sl, f, cl);
			sl += cl;
			t->given |= tf_fields(*c);
		}
		f = c + 1;
	}
	if (tf_flush(t, &p, sub, &sl) == -1)
		return -1;
	while (p < end && isspace((unsigned char)*p))
		p++;
	return p == end ? 0 : -1;
}

/* YYYY-MM-DD[Thh:mm:ss[.frac][zone]], Ruby's Time.iso8601. */
static int
tf_iso8601(struct tf *t, const char *p, const char *end)
{
	struct tm *tm = &t->tm;
	int y, mon, d, h, mi, s;

	while (p < end && isspace((unsigned char)*p))
		p++;
	if (tf_num(&p, end, 4, &y) == -1 || p == end || *p++ != '-' ||
	    tf_num(&p, end, 2, &mon) == -1 || p == end || *p++ != '-' ||
	    tf_num(&p, end, 2, &d) == -1)
		return -1;
	h = mi = s = 0;
	if (p < end && (*p == 'T' || *p == 't')) {
		p++;
		if (tf_num(&p, end, 2, &h) == -1 || p == end || *p++ != ':' ||
		    tf_num(&p, end, 2, &mi) == -1 || p == end || *p++ != ':' ||
		    tf_num(&p, end, 2, &s) == -1)
			return -1;
		if (p < end && (*p == '.' || *p == ',')) {
			p++;
			if (tf_frac(&p, end, 9, 1, &t->nsec) == -1)
				return -1;
		}
		if (p < end && !isspace((unsigned char)*p)) {
			if (tf_zone(&p, end, &t->off) == -1)
				return -1;
			t->zoned = 1;
		}
	}
	while (p < end && isspace((unsigned char)*p))
		p++;
	if (p != end || mon < 1 || mon > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || s > 60)
		return -1;
	tm->tm_year = y - 1900;
	tm->tm_mon = mon - 1;
	tm->tm_mday = d;
	tm->tm_hour = h;
	tm->tm_min = mi;
	tm->tm_sec = s;
	t->given = TF_YEAR | TF_MON | TF_MDAY | TF_HOUR | TF_MIN | TF_SEC;
	return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian): Howard Hinnant's
 * days_from_civil, so that no per-line timegm(3) is needed. */
static long long
tf_days_from_civil(long long y, unsigned m, unsigned d)
{
	long long era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

/* A struct tm read as UTC; fields may be out of range (day 40 of
 * January), as timegm(3) allows. */
static long long
tf_timegm(const struct tm *tm)
{
	long long y = tm->tm_year + 1900LL, mon = tm->tm_mon;

	y += mon / 12;
	mon %= 12;
	if (mon < 0) {
		mon += 12;
		y--;
	}
	return (tf_days_from_civil(y, (unsigned)mon + 1, 1) + tm->tm_mday - 1) *
	    86400LL + tm->tm_hour * 3600LL + tm->tm_min * 60LL + tm->tm_sec;
}

/* A named zone's offset at a wall-clock time: mktime(3) under TZ=name,
 * the caller's TZ put back after. */
static long
tf_named_off(const char *name, long long wall)
{
	char *old = getenv("TZ"), save[256];
	int had = old != NULL && strlen(old) < sizeof save;
	struct tm tm;
	time_t w = (time_t)wall, t;

	if (had)
		strcpy(save, old);
	setenv("TZ", name, 1);
	tzset();
	gmtime_r(&w, &tm);
	tm.tm_isdst = -1;
	t = mktime(&tm);
	if (had)
		setenv("TZ", save, 1);
	else
		unsetenv("TZ");
	tzset();
	return t == (time_t)-1 ? 0 : (long)(wall - (long long)t);
}

static long
tf_local_off(long long wall)
{
	struct tm tm;
	time_t w = (time_t)wall, t;

	gmtime_r(&w, &tm);
	tm.tm_isdst = -1;
	t = mktime(&tm);
	return t == (time_t)-1 ? 0 : (long)(wall - (long long)t);
}

/* Seconds east of UTC of the zone at a wall-clock time, cached per
 * wall-clock hour (zones change offset on the hour, or the half hour
 * in a few; a changing minute within the cached hour is rare enough). */
static long
tf_zone_off(struct timefmt_zone *z, long long wall)
{
	long long hour = wall / 3600;

	switch (z->kind) {
	case TIMEFMT_UTC:
		return 0;
	case TIMEFMT_OFFSET:
		return z->off;
	}
	if (z->cached && z->cache_hour == hour)
		return z->cache_off;
	z->cache_off = z->kind == TIMEFMT_NAMED ? tf_named_off(z->name, wall) :
	    tf_local_off(wall);
	z->cache_hour = hour;
	z->cached = 1;
	return z->cache_off;
}

/* Ruby's Time.strptime: the fields before the first one given come from
 * now, in the zone the time is read in. */
static void
tf_fill(struct tf *t, struct timefmt_zone *z)
{
	struct tm *tm = &t->tm, now;
	time_t clock = time(NULL);

	if (t->given & TF_YDAY && !(t->given & (TF_MON | TF_MDAY))) {
		/* timegm normalises day n of January into its month */
		tm->tm_mon = 0;
		tm->tm_mday = tm->tm_yday + 1;
		t->given |= TF_MON | TF_MDAY;
	}
	if ((t->given & TF_YEAR) != 0)
		return;
	if (t->zoned)
		clock += t->off;
	else if (z->kind == TIMEFMT_LOCAL)
		clock += tf_local_off((long long)clock);
	else
		clock += tf_zone_off(z, (long long)clock);
	gmtime_r(&clock, &now);
	tm->tm_year = now.tm_year;
	if (t->given & TF_MON)
		return;
	tm->tm_mon = now.tm_mon;
	if (t->given & TF_MDAY)
		return;
	tm->tm_mday = now.tm_mday;
	if (t->given & TF_HOUR)
		return;
	tm->tm_hour = now.tm_hour;
	if (t->given & TF_MIN)
		return;
	tm->tm_min = now.tm_min;
	if (t->given & TF_SEC)
		return;
	tm->tm_sec = now.tm_sec;
}

static int
tf_epoch(struct tf *t, struct timefmt_zone *z, uint32_t *sec, uint32_t *nsec)
{
	long long e;

	if (t->epoch_set)
		e = t->epoch;
	else {
		if (t->given == 0)
			return -1;	/* Ruby: "no time information" */
		tf_fill(t, z);
		e = tf_timegm(&t->tm);
		e -= t->zoned ? t->off : tf_zone_off(z, e);
	}
	if (e < 0 || e > UINT32_MAX)
		return -1;
	*sec = (uint32_t)e;
	*nsec = t->nsec;
	return 0;
}

int
timefmt_zone(struct timefmt_zone *z, const char *spec)
{
	const char *p;
	char path[300];
	long off;

	memset(z, 0, sizeof *z);
	z->kind = TIMEFMT_LOCAL;
	if (spec == NULL || strcmp(spec, "localtime") == 0)
		return 0;
	p = spec;
	if ((*p == '+' || *p == '-') && tf_zone(&p, p + strlen(p), &off) == 0 &&
	    *p == '\0') {
		z->kind = TIMEFMT_OFFSET;
		z->off = off;
		return 0;
	}
	if (strcasecmp(spec, "UTC") == 0 || strcasecmp(spec, "GMT") == 0 ||
	    strcmp(spec, "Z") == 0) {
		z->kind = TIMEFMT_UTC;
		return 0;
	}
	/* a TZ database name: it must name a file there */
	if (strlen(spec) >= sizeof z->name || spec[0] == '/' ||
	    strstr(spec, "..") != NULL)
		return -1;
	snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", spec);
	if (access(path, R_OK) == -1)
		return -1;
	z->kind = TIMEFMT_NAMED;
	strcpy(z->name, spec);
	return 0;
}

int
timefmt_parsez(const char *s, size_t n, const char *fmt, struct timefmt_zone *z,
    uint32_t *sec, uint32_t *nsec)
{
	char in[TF_MAXLEN];
	struct tf t;
	int rc;

	if (fmt == NULL || n >= sizeof in)
		return -1;
	memset(&t, 0, sizeof t);
	t.tm.tm_mday = 1;
	if (strcmp(fmt, "%iso8601") == 0)
		rc = tf_iso8601(&t, s, s + n);
	else if ((rc = tf_native(&t, s, s + n, fmt)) == 1) {
		/* strptime(3) wants a C string */
		memcpy(in, s, n);
		in[n] = '\0';
		memset(&t, 0, sizeof t);
		t.tm.tm_mday = 1;
		rc = tf_format(&t, in, n, fmt);
	}
	if (rc == -1)
		return -1;
	return tf_epoch(&t, z, sec, nsec);
}

int
timefmt_parse(const char *s, size_t n, const char *fmt, int utc,
    uint32_t *sec, uint32_t *nsec)
{
	struct timefmt_zone z;

	memset(&z, 0, sizeof z);
	z.kind = utc ? TIMEFMT_UTC : TIMEFMT_LOCAL;
	return timefmt_parsez(s, n, fmt, &z, sec, nsec);
}

int
timefmt_number(const char *s, size_t n, uint32_t *sec, uint32_t *nsec)
{
	const char *p = s, *end = s + n, *ip, *fp = NULL;
	size_t il, fl = 0, nd;
	long exp = 0, point, k;
	uint64_t v = 0;
	uint32_t ns = 0;
	int esign = 1, i, d;

	for (ip = p; p < end && isdigit((unsigned char)*p); p++)
		;
	if ((il = (size_t)(p - ip)) == 0)
		return -1;
	if (p < end && *p == '.') {
		for (fp = ++p; p < end && isdigit((unsigned char)*p); p++)
			;
		if ((fl = (size_t)(p - fp)) == 0)
			return -1;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		if (++p < end && (*p == '+' || *p == '-'))
			esign = *p++ == '-' ? -1 : 1;
		if (p == end || !isdigit((unsigned char)*p))
			return -1;
		/* past a few thousand the answer is 0 or overflow anyway */
		for (; p < end && isdigit((unsigned char)*p); p++)
			if (exp < 100000)
				exp = exp * 10 + (*p - '0');
	}
	if (p != end || il + fl > 100000)
		return -1;
	/* the mantissa's digits in a row, the point moved by the exponent */
	nd = il + fl;
	point = (long)il + esign * exp;
	for (k = 0; k < point; k++) {
		d = (size_t)k < il ? ip[k] - '0' :
		    (size_t)k < nd ? fp[k - (long)il] - '0' : 0;
		if ((v = v * 10 + (uint64_t)d) > UINT32_MAX)
			return -1;
	}
	for (i = 0; i < 9; i++) {
		k = point + i;
		d = k < 0 || (size_t)k >= nd ? 0 :
		    (size_t)k < il ? ip[k] - '0' : fp[k - (long)il] - '0';
		ns = ns * 10 + (uint32_t)d;
	}
	*sec = (uint32_t)v;
	*nsec = ns;
	return 0;
}
