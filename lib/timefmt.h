/* timefmt: event times from text, the way Fluentd's parsers read them.
 *
 * timefmt_parse takes a Fluentd time_format: strptime(3) conversions, plus
 * these, which strptime(3) lacks or gets wrong for us:
 *	%N	fraction of a second, up to 9 digits; more are read and
 *		dropped (truncated, as Fluentd keeps nanoseconds)
 *	%3N %6N %9N (any %<w>N, w <= 9)  fraction, up to w digits
 *	%L	fraction, up to 3 digits (milliseconds)
 *	%z %:z %Z  offset: Z, UTC, GMT, +hh, +hhmm or +hh:mm
 *	%s	seconds since the epoch; other fields are then ignored
 * A fraction is read as digits after a decimal point: "5" is 0.5 s.
 * The whole format "%iso8601" reads YYYY-MM-DD[Thh:mm:ss[.frac][zone]]
 * with the zone as for %z, like Ruby's Time.iso8601.
 *
 * Without a zone in the input the time is local, or UTC if utc is set.
 * Fields the format does not give are filled as Ruby's Time.strptime
 * does: those before the first given field come from the current time
 * (so "%b %d %H:%M:%S" is in the current year), the rest are the lowest
 * value.  Only trailing white space may follow the last conversion.
 * Times before 1970 or past 2106 do not fit the forward protocol's
 * uint32 seconds and are errors.  0, or -1. */
#ifndef LF_TIMEFMT_H
#define LF_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

int timefmt_parse(const char *s, size_t n, const char *fmt, int utc,
    uint32_t *sec, uint32_t *nsec);

/* The zone a time without one is read in: local time, UTC, a fixed
 * offset or a TZ database name.  Offsets of local and named zones are
 * found with mktime(3) (under TZ=name, the caller's TZ put back) once
 * per wall-clock hour and cached here, so keep one per parser. */
enum { TIMEFMT_LOCAL, TIMEFMT_UTC, TIMEFMT_OFFSET, TIMEFMT_NAMED };
struct timefmt_zone {
	int kind;
	long off;		/* TIMEFMT_OFFSET: seconds east of UTC */
	char name[64];		/* TIMEFMT_NAMED */
	int cached;
	long long cache_hour;
	long cache_off;
};

/* spec: NULL or "localtime", "UTC", "+09:00" ("+0900", "-07"), or a
 * name under /usr/share/zoneinfo ("Asia/Tokyo").  0, or -1 if unknown. */
int timefmt_zone(struct timefmt_zone *z, const char *spec);

/* timefmt_parse in a zone.  The common conversions (%Y %y %m %d %e %H
 * %k %M %S %T %b %B %h %a %A %N %L %z %Z %s %%) are read without
 * strptime(3); a format with any other goes through it. */
int timefmt_parsez(const char *s, size_t n, const char *fmt,
    struct timefmt_zone *z, uint32_t *sec, uint32_t *nsec);

/* Decimal epoch text, as in JSON: digits, an optional fraction and an
 * optional exponent ("1441588984.123456789", "1.5e9").  Exact: the digits
 * are shifted, never rounded through a double; fraction digits past the
 * ninth are dropped.  No sign, no white space.  0, or -1. */
int timefmt_number(const char *s, size_t n, uint32_t *sec, uint32_t *nsec);

#endif
