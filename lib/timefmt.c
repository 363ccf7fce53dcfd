#include <ctype.h>
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

/* Ruby's Time.strptime: the fields before the first one given come from
 * now, in the zone the time is read in. */
static void
tf_fill(struct tf *t, int utc)
{
	struct tm *tm = &t->tm, now;
	time_t clock = time(NULL);

	if (t->given & TF_YDAY && !(t->given & (TF_MON | TF_MDAY))) {
		/* timegm normalises day n of January into its month */
		tm->tm_mon = 0;
		tm->tm_mday = tm->tm_yday + 1;
		t->given |= TF_MON | TF_MDAY;
	}
	if (t->zoned) {
		clock += t->off;
		gmtime_r(&clock, &now);
	} else if (utc)
		gmtime_r(&clock, &now);
	else
		localtime_r(&clock, &now);
	if (t->given & TF_YEAR)
		return;
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
tf_epoch(struct tf *t, int utc, uint32_t *sec, uint32_t *nsec)
{
	long long e;

	if (t->epoch_set)
		e = t->epoch;
	else {
		if (t->given == 0)
			return -1;	/* Ruby: "no time information" */
		tf_fill(t, utc);
		if (t->zoned)
			e = (long long)timegm(&t->tm) - t->off;
		else if (utc)
			e = timegm(&t->tm);
		else {
			t->tm.tm_isdst = -1;
			e = mktime(&t->tm);
		}
	}
	if (e < 0 || e > UINT32_MAX)
		return -1;
	*sec = (uint32_t)e;
	*nsec = t->nsec;
	return 0;
}

int
timefmt_parse(const char *s, size_t n, const char *fmt, int utc,
    uint32_t *sec, uint32_t *nsec)
{
	char in[TF_MAXLEN];
	struct tf t;
	int rc;

	if (fmt == NULL || n >= sizeof in)
		return -1;
	/* strptime(3) wants a C string */
	memcpy(in, s, n);
	in[n] = '\0';
	memset(&t, 0, sizeof t);
	t.tm.tm_mday = 1;
	if (strcmp(fmt, "%iso8601") == 0)
		rc = tf_iso8601(&t, in, in + n);
	else
		rc = tf_format(&t, in, n, fmt);
	if (rc == -1)
		return -1;
	return tf_epoch(&t, utc, sec, nsec);
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
