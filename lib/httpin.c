#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>
#include <msgpack.h>

#include "buf.h"
#include "gz.h"
#include "httpin.h"
#include "json.h"
#include "log.h"
#include "mp.h"
#include "sock.h"
#include "stream.h"
#include "timefmt.h"

#define READ_SIZE	(64u << 10)	/* one read(2) */
#define READ_TURN	(1u << 20)	/* bytes read from one client per wake-up */
#define OUT_MAX		(64u << 10)	/* responses waiting: stop reading */
#define KEEP		(16u << 10)	/* buffer capacity kept between requests */
#define LINGER		2.0	/* seconds a closing connection drains input */
#define ACCEPT_PAUSE	0.5	/* seconds, out of descriptors */
#define SLOT_NONE	UINT32_MAX

enum state {
	ST_READ,	/* parsing requests */
	ST_OFFER,	/* inside the tool's function */
	ST_WAIT,	/* taken: waiting for httpin_reply */
	ST_HELD,	/* held: offered again by httpin_retry */
	ST_CLOSE,	/* answered for the last time: write, then close */
};

struct hdr {
	size_t noff, nlen, voff, vlen;
};

/* A parameter's value: bytes in the request's scratch buffer or its body. */
struct param {
	int set, inbody;
	size_t off, len;
};

struct httpin_listener {
	struct httpin_listener *next;
	struct httpin *in;
	int fd;
	ev_io io;
	struct httpin_stats st;
	char *unlink_path;		/* a Unix socket file we made */
	char name[128];
};

struct conn {
	struct conn *next, **prevp;
	struct httpin *in;
	struct httpin_listener *l;
	int fd, eof;
	uint32_t slot;
	enum state state;
	int replied;		/* a reply came inside the tool's function: ok + 1 */
	http_parser p;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	ev_io rio, wio;
	struct buf inb, out;
	/* the request being received */
	int inreq;		/* a byte of it came */
	int status;		/* a callback's verdict: 413, 414, 431 */
	int keep;		/* keep-alive after this request */
	int hdone;		/* its headers are all here */
	int last_value;		/* the last header callback was a value */
	struct buf url, hbytes, hidx, body;
	size_t hsize;		/* bytes of the request line and headers */
	unsigned long seq;	/* when it began, for the memory budget */
	ev_tstamp since;	/* being read since */
	double spent;		/* seconds it was read before that */
	ev_tstamp idle_since, last_out;
	/* the request decoded */
	struct buf tag, entries, scratch, extra, inflated, rec;
	size_t count, nextra;
	size_t mem;
};

struct slot {
	uint32_t gen;
	uint32_t next;		/* free list */
	struct conn *c;
};

struct httpin {
	struct ev_loop *loop;
	struct httpin_conf conf;
	httpin_fn fn;
	void *ctx;
	char **origins;		/* cors_allow_origins split */
	size_t norigins;
	int cors_any;
	struct httpin_listener *listeners;
	struct conn *conns;
	size_t nconns;
	struct slot *slots;
	uint32_t nslots, free_slot;
	size_t mem, waiting;
	int over, stopped, paused_full;
	struct conn *eldest;
	unsigned long seq;
	ev_timer sweep, accept_wait;
	struct httpin_stats total;	/* of connections without a listener */
};

/* An empty 1x1 GIF, in_http's respond_with_empty_img. */
static const unsigned char empty_gif[] = {
	'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0x80, 0xff, 0, 0xff, 0xff,
	0xff, 0, 0, 0, ',', 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 'D', 1, 0, ';',
};

static void conn_read(struct ev_loop *loop, ev_io *w, int revents);
static void conn_write(struct ev_loop *loop, ev_io *w, int revents);
static void conn_close(struct conn *c);
static void conn_parse(struct conn *c);
static void update(struct conn *c);
static void budget(struct httpin *in);

void
httpin_conf_default(struct httpin_conf *conf)
{
	memset(conf, 0, sizeof *conf);
	conf->body_size_limit = HTTPIN_BODY_SIZE_LIMIT;
	conf->decompression_size_limit = HTTPIN_DECOMPRESSION_SIZE_LIMIT;
	conf->keepalive_timeout = HTTPIN_KEEPALIVE_TIMEOUT;
	conf->request_timeout = HTTPIN_REQUEST_TIMEOUT;
	conf->max_header_size = HTTPIN_MAX_HEADER_SIZE;
	conf->max_url = HTTPIN_MAX_URL;
	conf->max_connections = HTTPIN_MAX_CONNECTIONS;
	conf->max_memory = HTTPIN_MAX_MEMORY;
}

static struct httpin_stats *
stats_of(struct conn *c)
{
	return c->l ? &c->l->st : &c->in->total;
}

static ev_tstamp
now_of(const struct httpin *in)
{
	return in->loop ? ev_now(in->loop) : 0;
}

/* Responses */

static const char *
reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	default: return "Service Unavailable";
	}
}

/* Is origin allowed by cors_allow_origins?  Exact, or one '*' as any run. */
static int
origin_ok(const struct httpin *in, const char *o, size_t n)
{
	for (size_t i = 0; i < in->norigins; i++) {
		const char *a = in->origins[i], *star = strchr(a, '*');
		size_t pre, post;

		if (star == NULL) {
			if (strlen(a) == n && memcmp(a, o, n) == 0)
				return 1;
			continue;
		}
		pre = (size_t)(star - a);
		post = strlen(star + 1);
		if (pre + post <= n && memcmp(a, o, pre) == 0 &&
		    memcmp(star + 1, o + n - post, post) == 0)
			return 1;
	}
	return 0;
}

static const struct hdr *
header(const struct conn *c, const char *name)
{
	const struct hdr *h = (const struct hdr *)c->hidx.p;
	size_t n = c->hidx.len / sizeof *h, k = strlen(name);

	for (size_t i = 0; i < n; i++)
		if (h[i].nlen == k && strncasecmp((const char *)c->hbytes.p +
		    h[i].noff, name, k) == 0)
			return &h[i];
	return NULL;
}

#define HVAL(c, h) ((const char *)(c)->hbytes.p + (h)->voff)

/* CORS headers for a response to an allowed origin. */
static int
cors_headers(struct conn *c, struct buf *b)
{
	const struct hdr *o;

	if ((c->in->origins == NULL && !c->in->cors_any) || !c->hdone)
		return 0;	/* (not from the headers of a malformed request) */
	if (c->in->cors_any)
		return buf_adds(b, "Access-Control-Allow-Origin: *\r\n");
	if ((o = header(c, "Origin")) == NULL || !origin_ok(c->in, HVAL(c, o), o->vlen))
		return 0;
	if (buf_printf(b, "Access-Control-Allow-Origin: %.*s\r\n", (int)o->vlen,
	    HVAL(c, o)) == -1)
		return -1;
	return c->in->conf.cors_allow_credentials ?
	    buf_adds(b, "Access-Control-Allow-Credentials: true\r\n") : 0;
}

/* Queue a response.  close: the connection ends after it. */
static void
respond(struct conn *c, int status, const char *extra, const void *body,
    size_t len, const char *ctype, int close)
{
	struct httpin_stats *st = stats_of(c);
	size_t start = c->out.len;
	int rc;

	if (c->in->stopped || !c->keep)
		close = 1;
	st->requests++;
	if (status >= 500)
		st->status_5xx++;
	else if (status >= 400)
		st->status_4xx++;
	rc = buf_printf(&c->out, "HTTP/1.1 %d %s\r\n", status, reason(status));
	if (rc == 0 && status != 204)
		rc = buf_printf(&c->out, "Content-Type: %s\r\n"
		    "Content-Length: %zu\r\n", ctype ? ctype : "text/plain", len);
	if (rc == 0 && status == 503)
		rc = buf_printf(&c->out, "Retry-After: %d\r\n", HTTPIN_RETRY_AFTER);
	if (rc == 0 && extra)
		rc = buf_adds(&c->out, extra);
	if (rc == 0)
		rc = cors_headers(c, &c->out);
	if (rc == 0)
		rc = buf_printf(&c->out, "Connection: %s\r\n\r\n",
		    close ? "close" : "keep-alive");
	if (rc == 0 && len > 0 && !(c->hdone && c->p.method == HTTP_HEAD))
		rc = buf_add(&c->out, body, len);
	if (rc == -1) {
		c->out.len = start;
		close = 1;
	}
	if (close)
		c->state = ST_CLOSE;
	if (c->fd >= 0 && c->in->loop)
		ev_io_start(c->in->loop, &c->wio);
}

/* An error: in_http's body, "400 Bad Request\n<message>\n". */
static void
fail(struct conn *c, int status, int close, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void
fail(struct conn *c, int status, int close, const char *fmt, ...)
{
	char msg[256], body[320];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* a client's bytes quoted in it stay on one line */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	n = snprintf(body, sizeof body, "%d %s\n%s\n", status, reason(status), msg);
	if (n < 0 || (size_t)n >= sizeof body)
		n = (int)sizeof body - 1;
	if (status != 503)
		LOG_WARN_LIMITED("http %s: %d %s", c->l ? c->l->name : "probe",
		    status, msg);
	respond(c, status, status == 405 ? "Allow: POST, PUT, GET, HEAD, OPTIONS\r\n" :
	    NULL, body, (size_t)n, NULL, close);
}

static void
succeed(struct conn *c)
{
	const struct httpin_conf *cf = &c->in->conf;

	stats_of(c)->events += c->count;
	if (cf->respond_with_empty_img)
		respond(c, 200, NULL, empty_gif, sizeof empty_gif,
		    "image/gif; charset=utf-8", 0);
	else
		respond(c, cf->use_204_response ? 204 : 200, NULL, "", 0, NULL, 0);
}

/* Memory */

static size_t
conn_mem(const struct conn *c)
{
	return c->inb.cap + c->out.cap + c->url.cap + c->hbytes.cap +
	    c->hidx.cap + c->body.cap + c->tag.cap + c->entries.cap +
	    c->scratch.cap + c->extra.cap + c->inflated.cap + c->rec.cap;
}

static void
account(struct conn *c)
{
	size_t m = conn_mem(c);

	c->in->mem = c->in->mem - c->mem + m;
	c->mem = m;
}

static void
request_reset(struct conn *c)
{
	struct buf *b[] = { &c->url, &c->hbytes, &c->hidx, &c->body, &c->tag,
	    &c->entries, &c->scratch, &c->extra, &c->inflated, &c->rec };

	for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
		buf_reset(b[i]);
		buf_shrink(b[i], KEEP);
	}
	c->inreq = 0;
	c->hdone = 0;
	c->status = 0;
	c->last_value = 0;
	c->hsize = 0;
	c->seq = 0;
	c->spent = 0;
	c->count = 0;
	c->nextra = 0;
	c->idle_since = now_of(c->in);
	account(c);
}

/* Parser callbacks */

static int
begin_req(struct conn *c)
{
	if (!c->inreq) {
		c->inreq = 1;
		c->seq = ++c->in->seq;
		c->since = now_of(c->in);
		c->spent = 0;
	}
	return 0;
}

static int
on_begin(http_parser *p)
{
	return begin_req(p->data);
}

static int
on_url(http_parser *p, const char *at, size_t n)
{
	struct conn *c = p->data;

	c->hsize += n;
	if (c->url.len + n > c->in->conf.max_url) {
		c->status = 414;
		return 1;
	}
	return buf_add(&c->url, at, n) == -1 ? (c->status = 500, 1) : 0;
}

static int
header_bytes(struct conn *c, size_t n)
{
	c->hsize += n;
	if (c->hsize > c->in->conf.max_header_size + c->url.len) {
		c->status = 431;
		return -1;
	}
	return 0;
}

static int
on_field(http_parser *p, const char *at, size_t n)
{
	struct conn *c = p->data;
	struct hdr h, *last;

	if (header_bytes(c, n) == -1)
		return 1;
	if (c->last_value || c->hidx.len == 0) {
		h.noff = c->hbytes.len;
		h.nlen = 0;
		h.voff = h.vlen = 0;
		if (buf_add(&c->hidx, &h, sizeof h) == -1)
			return c->status = 500, 1;
		c->last_value = 0;
	}
	last = (struct hdr *)(c->hidx.p + c->hidx.len - sizeof h);
	if (buf_add(&c->hbytes, at, n) == -1)
		return c->status = 500, 1;
	last->nlen += n;
	last->voff = c->hbytes.len;
	return 0;
}

static int
on_value(http_parser *p, const char *at, size_t n)
{
	struct conn *c = p->data;
	struct hdr *last;

	if (header_bytes(c, n) == -1)
		return 1;
	if (c->hidx.len == 0)
		return 0;
	last = (struct hdr *)(c->hidx.p + c->hidx.len - sizeof *last);
	if (buf_add(&c->hbytes, at, n) == -1)
		return c->status = 500, 1;
	last->vlen += n;
	c->last_value = 1;
	return 0;
}

static int
on_headers(http_parser *p)
{
	struct conn *c = p->data;
	const struct hdr *e = header(c, "Expect");
	int has_len = (p->flags & F_CONTENTLENGTH) != 0;

	c->keep = http_should_keep_alive(p);
	c->hdone = 1;
	/* (1 from this callback would mean "no body": errors are -1) */
	if (has_len && p->content_length > c->in->conf.body_size_limit) {
		c->status = 413;
		return -1;
	}
	if (e == NULL)
		return 0;
	if (e->vlen == 12 && strncasecmp(HVAL(c, e), "100-continue", 12) == 0) {
		if (p->http_major == 1 && p->http_minor >= 1 &&
		    buf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n") == 0 &&
		    c->fd >= 0 && c->in->loop)
			ev_io_start(c->in->loop, &c->wio);
		return 0;
	}
	c->status = 417;
	return -1;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
	struct conn *c = p->data;

	if (c->body.len + n > c->in->conf.body_size_limit) {
		c->status = 413;
		return 1;
	}
	return buf_add(&c->body, at, n) == -1 ? (c->status = 500, 1) : 0;
}

/* A whole request: the parser pauses, so it is answered before the next
 * one is parsed (pipelined requests are answered in order). */
static int
on_complete(http_parser *p)
{
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_begin,
	.on_url = on_url,
	.on_header_field = on_field,
	.on_header_value = on_value,
	.on_headers_complete = on_headers,
	.on_body = on_body,
	.on_message_complete = on_complete,
};

/* Decoding a request */

struct req {
	struct conn *c;
	struct param json, msgpack, ndjson, time;
	uint32_t sec, nsec;	/* now, or ?time= */
	int param_time;
	int status;		/* of an error other than 400 */
	char err[200];
};

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decode s[0..n) onto out ('+' is a space if plus). */
static int
pct_decode(struct buf *out, const char *s, size_t n, int plus)
{
	if (buf_reserve(out, n) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)s[i], h, l;

		if (ch == '%' && i + 2 < n && (h = hexval(s[i + 1])) >= 0 &&
		    (l = hexval(s[i + 2])) >= 0) {
			ch = h << 4 | l;
			i += 2;
		} else if (ch == '+' && plus) {
			ch = ' ';
		}
		out->p[out->len++] = (unsigned char)ch;
	}
	return 0;
}

/* The record key for a header or query parameter: PREFIX + NAME upper-cased,
 * '-' made '_'. */
static int
pack_key(msgpack_packer *pk, struct buf *tmp, const char *prefix,
    const char *name, size_t n)
{
	buf_reset(tmp);
	if (buf_adds(tmp, prefix) == -1 || buf_reserve(tmp, n) == -1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		tmp->p[tmp->len++] = ch == '-' ? '_' :
		    ch >= 'a' && ch <= 'z' ? ch - 32 : ch;
	}
	return msgpack_pack_str(pk, tmp->len) || msgpack_pack_str_body(pk,
	    tmp->p, tmp->len) ? -1 : 0;
}

static int
pack_str(msgpack_packer *pk, const void *p, size_t n)
{
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, p, n) ? -1 : 0;
}

/* b->p + off, for a buffer that may be empty (and its p NULL). */
static const unsigned char *
at(const struct buf *b, size_t off)
{
	return b->p ? b->p + off : (const unsigned char *)"";
}

static const unsigned char *
param_ptr(const struct req *r, const struct param *v)
{
	return at(v->inbody ? (r->c->inflated.len ? &r->c->inflated :
	    &r->c->body) : &r->c->scratch, v->off);
}

/* Parse a query string or form body: the parameters we use are noted, and
 * with qprefix each one is packed as an extra record key. */
static int
parse_form(struct req *r, const char *s, size_t n, int query)
{
	struct conn *c = r->c;
	msgpack_packer pk;
	struct buf tmp = BUF_INIT;
	size_t i = 0;

	if (n == 0)
		return 0;
	msgpack_packer_init(&pk, &c->extra, buf_msgpack_write);
	while (i < n) {
		const char *f = s + i, *amp = memchr(f, '&', n - i), *eq;
		size_t flen = amp ? (size_t)(amp - f) : n - i;
		size_t koff, klen, voff;
		struct param *dst = NULL;

		i += flen + 1;
		if (flen == 0)
			continue;
		eq = memchr(f, '=', flen);
		koff = c->scratch.len;
		if (pct_decode(&c->scratch, f, eq ? (size_t)(eq - f) : flen, 1) == -1)
			goto nomem;
		klen = c->scratch.len - koff;
		voff = c->scratch.len;
		if (eq && pct_decode(&c->scratch, eq + 1, flen - (size_t)(eq + 1 - f),
		    1) == -1)
			goto nomem;
#define KEY(s) (klen == sizeof s - 1 && memcmp(at(&c->scratch, koff), s, klen) == 0)
		if (KEY("json"))
			dst = &r->json;
		else if (KEY("msgpack"))
			dst = &r->msgpack;
		else if (KEY("ndjson"))
			dst = &r->ndjson;
		else if (KEY("time"))
			dst = &r->time;
#undef KEY
		if (dst) {
			dst->set = 1;
			dst->inbody = 0;
			dst->off = voff;
			dst->len = c->scratch.len - voff;
		}
		if (query && c->in->conf.add_query_params) {
			if (pack_key(&pk, &tmp, "QUERY_", (const char *)at(&c->scratch,
			    koff), klen) == -1 || pack_str(&pk, at(&c->scratch, voff),
			    c->scratch.len - voff) == -1)
				goto nomem;
			c->nextra++;
		}
	}
	buf_free(&tmp);
	return 0;
nomem:
	buf_free(&tmp);
	return -1;
}

/* The extra keys of add_http_headers and add_remote_addr. */
static int
pack_extra(struct req *r)
{
	struct conn *c = r->c;
	const struct hdr *h = (const struct hdr *)c->hidx.p, *x;
	size_t n = c->hidx.len / sizeof *h;
	msgpack_packer pk;
	struct buf tmp = BUF_INIT;
	char host[64];
	const char *a;
	size_t alen;
	int rc = 0;

	msgpack_packer_init(&pk, &c->extra, buf_msgpack_write);
	for (size_t i = 0; c->in->conf.add_http_headers && i < n && rc == 0; i++) {
		rc = pack_key(&pk, &tmp, "HTTP_", (const char *)at(&c->hbytes,
		    h[i].noff), h[i].nlen) == -1 ||
		    pack_str(&pk, at(&c->hbytes, h[i].voff), h[i].vlen) == -1 ? -1 : 0;
		c->nextra++;
	}
	buf_free(&tmp);
	if (rc == -1 || !c->in->conf.add_remote_addr)
		return rc;
	if ((x = header(c, "X-Forwarded-For")) != NULL) {
		const char *comma = memchr(HVAL(c, x), ',', x->vlen);

		a = HVAL(c, x);
		alen = comma ? (size_t)(comma - a) : x->vlen;
		while (alen > 0 && (*a == ' ' || *a == '\t'))
			a++, alen--;
		while (alen > 0 && (a[alen - 1] == ' ' || a[alen - 1] == '\t'))
			alen--;
	} else {
		host[0] = '\0';
		if (c->peerlen > 0)
			(void)sock_host((const struct sockaddr *)&c->peer, c->peerlen,
			    host, sizeof host, NULL);
		a = host;
		alen = strlen(host);
	}
	c->nextra++;
	return pack_str(&pk, "REMOTE_ADDR", 11) == -1 || pack_str(&pk, a, alen) == -1 ?
	    -1 : 0;
}

static void
now_time(uint32_t *sec, uint32_t *nsec)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	*sec = (uint32_t)ts.tv_sec;
	*nsec = (uint32_t)ts.tv_nsec;
}

/* A record's time value, as in_http's Time.at(t).  0, 1 for "now" (nil,
 * false), or -1. */
static int
record_time(const struct mp_obj *o, uint32_t *sec, uint32_t *nsec)
{
	double f, ip;

	switch (o->type) {
	case MP_NIL:
		return 1;
	case MP_BOOL:
		return o->v.b ? -1 : 1;
	case MP_UINT:
		if (o->v.u > UINT32_MAX)
			return -1;
		*sec = (uint32_t)o->v.u;
		*nsec = 0;
		return 0;
	case MP_FLOAT:
		f = o->v.f;
		if (!(f >= 0 && f < 4294967296.0))
			return -1;
		*nsec = (uint32_t)(modf(f, &ip) * 1e9);
		*sec = (uint32_t)ip;
		return 0;
	case MP_EXT:
		if (o->ext != 0 || o->n != 8)
			return -1;
		*sec = (uint32_t)o->p[0] << 24 | (uint32_t)o->p[1] << 16 |
		    (uint32_t)o->p[2] << 8 | o->p[3];
		*nsec = (uint32_t)o->p[4] << 24 | (uint32_t)o->p[5] << 16 |
		    (uint32_t)o->p[6] << 8 | o->p[7];
		return *nsec < 1000000000u ? 0 : -1;
	default:
		return -1;
	}
}

/* One record (a map of at most JSON_MAXDEPTH levels) -> one entry: its
 * time taken from (and its "time" key dropped), unless ?time= was given,
 * and the extra keys added. */
static int
add_record(struct req *r, const unsigned char *p, size_t n, size_t idx)
{
	struct conn *c = r->c;
	const unsigned char *q = p, *end = p + n, *k;
	unsigned char head[STREAM_ENTRY_HEAD];
	uint32_t sec = r->sec, nsec = r->nsec, keep = 0, i;
	struct mp_obj m, key, val;
	msgpack_packer pk;
	int t;

	if (mp_read(&q, end, &m) == -1 || m.type != MP_MAP) {
		snprintf(r->err, sizeof r->err, "event %zu: not a map", idx + 1);
		return -1;
	}
	/* the time, and how many keys stay */
	for (i = 0, k = q; i < m.n; i++) {
		const unsigned char *v, *ks = k;

		if (mp_read(&ks, end, &key) == -1 || mp_pass(&k, end) == -1 ||
		    (v = k, mp_pass(&k, end)) == -1)
			goto bad;
		if (r->param_time || !mp_streq(&key, "time")) {
			keep++;
			continue;
		}
		if (mp_read(&v, end, &val) == -1)
			goto bad;
		if ((t = record_time(&val, &sec, &nsec)) == -1) {
			snprintf(r->err, sizeof r->err, "event %zu: time: not epoch "
			    "seconds (a number, or an EventTime)", idx + 1);
			return -1;
		}
		if (t == 1) {
			sec = r->sec;
			nsec = r->nsec;
		}
	}
	/* headers added to each of many small records would multiply them */
	if (c->entries.len + sizeof head + 5 + n + c->extra.len >
	    c->in->conf.decompression_size_limit) {
		snprintf(r->err, sizeof r->err, "the events take more than %zu bytes "
		    "(decompression_size_limit)", c->in->conf.decompression_size_limit);
		r->status = 413;
		return -1;
	}
	stream_entry_head(head, sec, nsec);
	msgpack_packer_init(&pk, &c->entries, buf_msgpack_write);
	if (buf_add(&c->entries, head, sizeof head) == -1 ||
	    msgpack_pack_map(&pk, keep + c->nextra) != 0)
		goto nomem;
	for (i = 0, k = q; i < m.n; i++) {
		const unsigned char *kstart = k, *ks = k;

		(void)mp_read(&ks, end, &key);
		(void)mp_pass(&k, end);
		(void)mp_pass(&k, end);
		if (!r->param_time && mp_streq(&key, "time"))
			continue;
		if (buf_add(&c->entries, kstart, (size_t)(k - kstart)) == -1)
			goto nomem;
	}
	if (buf_add(&c->entries, c->extra.p, c->extra.len) == -1)
		goto nomem;
	c->count++;
	return 0;
bad:
	snprintf(r->err, sizeof r->err, "event %zu: invalid msgpack", idx + 1);
	return -1;
nomem:
	snprintf(r->err, sizeof r->err, "out of memory");
	return -1;
}

static int
check_record(struct req *r, const unsigned char *p, size_t n, size_t *len,
    const char *what)
{
	int rc = mp_skip(p, n, JSON_MAXDEPTH, len);

	if (rc == MP_OK && p[0] != 0xde && p[0] != 0xdf && (p[0] & 0xf0) != 0x80) {
		snprintf(r->err, sizeof r->err, "%s: event %zu: not a map", what,
		    r->c->count + 1);
		return -1;
	}
	if (rc != MP_OK) {
		snprintf(r->err, sizeof r->err, "%s: event %zu: %s", what,
		    r->c->count + 1, rc == MP_MORE ? "truncated" : rc == MP_EDEPTH ?
		    "nested too deep" : "invalid msgpack");
		return -1;
	}
	return 0;
}

/* msgpack: maps, or arrays of maps, one after another. */
static int
decode_msgpack(struct req *r, const unsigned char *p, size_t n)
{
	size_t off = 0, len, elen;

	while (off < n) {
		const unsigned char *q = p + off, *e;
		struct mp_obj o;
		int rc = mp_skip(q, n - off, MP_MAXDEPTH, &len);

		if (rc != MP_OK) {
			snprintf(r->err, sizeof r->err, "msgpack: %s at byte %zu",
			    rc == MP_MORE ? "truncated" : rc == MP_EDEPTH ?
			    "nested too deep" : "invalid", off);
			return -1;
		}
		e = q + len;
		if (mp_read(&q, e, &o) == -1) {
			snprintf(r->err, sizeof r->err, "msgpack: invalid at byte %zu",
			    off);
			return -1;
		}
		if (o.type == MP_MAP) {
			if (check_record(r, p + off, len, &elen, "msgpack") == -1 ||
			    add_record(r, p + off, len, r->c->count) == -1)
				return -1;
		} else if (o.type == MP_ARRAY) {
			for (uint32_t i = 0; i < o.n; i++) {
				if (check_record(r, q, (size_t)(e - q), &elen,
				    "msgpack") == -1 ||
				    add_record(r, q, elen, r->c->count) == -1)
					return -1;
				q += elen;
			}
		} else {
			snprintf(r->err, sizeof r->err, "msgpack: not a map or an "
			    "array of maps");
			return -1;
		}
		off += len;
	}
	return 0;
}

static size_t
skip_ws(const char *s, size_t i, size_t n)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	return i;
}

/* One JSON object's text -> one entry. */
static int
json_object(struct req *r, const char *s, size_t n)
{
	struct buf *rec = &r->c->rec;	/* not scratch: s may be in it */
	size_t start = rec->len;
	uint32_t sec, nsec;
	int has;
	char err[160];

	if (json_parse_record(s, n, NULL, rec, &sec, &nsec, &has, err,
	    sizeof err) == -1) {
		snprintf(r->err, sizeof r->err, "json: event %zu: %s",
		    r->c->count + 1, err);
		return -1;
	}
	/* the scratch buffer may have moved: parameters are offsets */
	if (add_record(r, rec->p + start, rec->len - start, r->c->count) == -1)
		return -1;
	rec->len = start;
	return 0;
}

/* The end of the JSON value starting at s[i] (an array element): strings
 * and nesting are followed; the value itself is checked by the parser. */
static size_t
json_end(const char *s, size_t i, size_t n)
{
	size_t depth = 0;
	int str = 0;

	for (; i < n; i++) {
		char ch = s[i];

		if (str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				str = 0;
			continue;
		}
		if (ch == '"')
			str = 1;
		else if (ch == '{' || ch == '[')
			depth++;
		else if (ch == '}' || ch == ']') {
			if (depth == 0)
				return i;
			depth--;
		} else if (ch == ',' && depth == 0)
			return i;
	}
	return n;
}

/* json: an object, or an array of objects. */
static int
decode_json(struct req *r, const char *s, size_t n, const char *what)
{
	size_t i = skip_ws(s, 0, n), e = 0;

	if (i < n && s[i] == '{')
		return json_object(r, s + i, n - i);
	if (i == n || s[i] != '[') {
		snprintf(r->err, sizeof r->err, "%s: %s", what, i == n ? "empty" :
		    "not an object or an array of objects");
		return -1;
	}
	i = skip_ws(s, i + 1, n);
	if (i < n && s[i] == ']')
		goto end;
	for (;;) {
		if (i == n || s[i] != '{') {
			snprintf(r->err, sizeof r->err, "%s: element %zu of the "
			    "array: not an object", what, r->c->count + 1);
			return -1;
		}
		e = json_end(s, i, n);
		if (json_object(r, s + i, e - i) == -1)
			return -1;
		if (e < n && s[e] == ']')
			break;
		if (e == n || s[e] != ',') {
			snprintf(r->err, sizeof r->err, "%s: %s after element %zu "
			    "of the array", what, e == n ? "the end" :
			    "invalid text", r->c->count);
			return -1;
		}
		i = skip_ws(s, e + 1, n);
	}
	i = e;
end:
	if (skip_ws(s, i + 1, n) != n) {
		snprintf(r->err, sizeof r->err, "%s: text after the array", what);
		return -1;
	}
	return 0;
}

/* ndjson: one json text per line, blank lines skipped. */
static int
decode_ndjson(struct req *r, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t len = nl ? (size_t)(nl - (s + i)) : n - i;

		if (skip_ws(s, i, i + len) < i + len &&
		    decode_json(r, s + i, len, "ndjson") == -1)
			return -1;
		i += len + 1;
	}
	return 0;
}

/* The media type of Content-Type, without parameters, is t? */
static int
ctype_is(const struct conn *c, const struct hdr *h, const char *t)
{
	const char *v = h ? HVAL(c, h) : "";
	size_t n = h ? h->vlen : 0, k = strlen(t);

	while (n > 0 && (*v == ' ' || *v == '\t'))
		v++, n--;
	return n >= k && strncasecmp(v, t, k) == 0 &&
	    (n == k || v[k] == ';' || v[k] == ' ' || v[k] == '\t');
}

/* Content-Encoding: the body inflated into c->inflated.  0, or the status. */
static int
inflate_body(struct req *r)
{
	struct conn *c = r->c;
	const struct hdr *h = header(c, "Content-Encoding");
	const char *err = NULL;
	struct gz_step g;
	size_t lim = c->in->conf.decompression_size_limit;
	int rc = -1, deflate;

	if (h == NULL || h->vlen == 0 ||
	    (h->vlen == 8 && strncasecmp(HVAL(c, h), "identity", 8) == 0))
		return 0;
	deflate = h->vlen == 7 && strncasecmp(HVAL(c, h), "deflate", 7) == 0;
	if (!deflate && !(h->vlen == 4 && strncasecmp(HVAL(c, h), "gzip", 4) == 0)) {
		snprintf(r->err, sizeof r->err, "Content-Encoding: %.*s: want gzip, "
		    "deflate or identity", (int)(h->vlen > 40 ? 40 : h->vlen),
		    HVAL(c, h));
		return 415;
	}
	if (c->body.len == 0)
		return 0;	/* nothing to inflate */
	if (gz_step_begin(&g, &err) == -1)
		goto bad;
	/* deflate is zlib's format: the same inflater, another header */
	if (deflate && inflateReset2(&g.z, MAX_WBITS) != Z_OK)
		err = "deflate: cannot initialise zlib", rc = -1;
	else
		rc = gz_step(&g, c->body.p, c->body.len, &c->inflated, lim, 0, &err);
	gz_step_end(&g);
	if (rc == 1 && c->inflated.len > 0) {
		buf_free(&c->body);
		account(c);
		return 0;
	}
	if (rc == 1) {
		err = "empty";
	} else if (c->inflated.len > lim) {
		snprintf(r->err, sizeof r->err, "body inflates to more than %zu "
		    "bytes (decompression_size_limit)", lim);
		buf_free(&c->inflated);
		return 413;
	}
bad:
	snprintf(r->err, sizeof r->err, "body: %s%s", deflate &&
	    strncmp(err, "gzip: ", 6) == 0 ? "deflate: " : "",
	    deflate && strncmp(err, "gzip: ", 6) == 0 ? err + 6 : err);
	buf_free(&c->inflated);
	return 400;
}

/* The tag from the URL's path.  0, or -1 with r->err. */
static int
make_tag(struct req *r, const char *path, size_t n)
{
	struct conn *c = r->c;
	const char *pre = c->in->conf.tag_prefix;
	size_t start;

	while (n > 0 && path[n - 1] == '/')
		n--;
	if (n > 0 && path[0] == '/')
		path++, n--;
	if (n == 0) {
		snprintf(r->err, sizeof r->err, "no tag: POST /TAG");
		return -1;
	}
	buf_reset(&c->tag);
	if (pre && *pre && (buf_adds(&c->tag, pre) == -1 ||
	    buf_addc(&c->tag, '.') == -1))
		goto nomem;
	start = c->tag.len;
	if (pct_decode(&c->tag, path, n, 0) == -1)
		goto nomem;
	for (size_t i = start; i < c->tag.len; i++) {
		if (c->tag.p[i] == '/')
			c->tag.p[i] = '.';
		else if (c->tag.p[i] < 0x20 || c->tag.p[i] == 0x7f) {
			snprintf(r->err, sizeof r->err, "tag: a control character");
			return -1;
		}
	}
	if (buf_addc(&c->tag, '\0') == -1)
		goto nomem;
	c->tag.len--;
	return 0;
nomem:
	snprintf(r->err, sizeof r->err, "out of memory");
	return -1;
}

/* The time of the request: ?time= or now.  0, or -1. */
static int
request_time(struct req *r)
{
	const char *s;
	size_t n = r->time.len, zeros = 0;

	now_time(&r->sec, &r->nsec);
	if (!r->time.set)
		return 0;
	r->param_time = 1;
	s = (const char *)param_ptr(r, &r->time);
	while (zeros < n && (s[zeros] == '0' || s[zeros] == '.'))
		zeros++;
	if (n == 0 || (zeros == n && memchr(s, '0', n)))
		return 0;	/* 0 is now, as in_http */
	if (timefmt_number(s, n, &r->sec, &r->nsec) == -1) {
		snprintf(r->err, sizeof r->err, "time: not epoch seconds: '%.*s'",
		    (int)(n > 40 ? 40 : n), s);
		return -1;
	}
	return 0;
}

/* OPTIONS: a CORS preflight, as in_http answers it. */
static void
preflight(struct conn *c)
{
	const struct hdr *m = header(c, "Access-Control-Request-Method"),
	    *h = header(c, "Access-Control-Request-Headers"),
	    *o = header(c, "Origin");
	struct buf x = BUF_INIT;

	if ((c->in->origins == NULL && !c->in->cors_any) || m == NULL ||
	    m->vlen != 4 || memcmp(HVAL(c, m), "POST", 4) != 0 ||
	    (!c->in->cors_any && (o == NULL || !origin_ok(c->in, HVAL(c, o),
	    o->vlen)))) {
		fail(c, 403, 0, "CORS: origin or method not allowed");
		return;
	}
	if (buf_printf(&x, "Access-Control-Allow-Methods: POST\r\n"
	    "Access-Control-Allow-Headers: %.*s\r\n", h ? (int)h->vlen : 0,
	    h ? HVAL(c, h) : "") == -1 || buf_addc(&x, '\0') == -1) {
		buf_free(&x);
		fail(c, 500, 1, "out of memory");
		return;
	}
	respond(c, 200, (const char *)x.p, "", 0, NULL, 0);
	buf_free(&x);
}

/* The parameters and the events of a POST.  0 (events in c->entries), or
 * an HTTP status with r->err. */
static int
decode(struct req *r)
{
	struct conn *c = r->c;
	const struct hdr *ct = header(c, "Content-Type");
	struct http_parser_url u;
	const char *url = (const char *)c->url.p;
	struct param *body = NULL;
	int rc;

	http_parser_url_init(&u);
	if (http_parser_parse_url(url, c->url.len, 0, &u) != 0 ||
	    !(u.field_set & 1 << UF_PATH)) {
		snprintf(r->err, sizeof r->err, "the URL has no path");
		return 400;
	}
	if (make_tag(r, url + u.field_data[UF_PATH].off,
	    u.field_data[UF_PATH].len) == -1)
		return 400;
	if ((rc = inflate_body(r)) != 0)
		return rc;
	if (pack_extra(r) == -1)
		goto nomem;
	if ((u.field_set & 1 << UF_QUERY) && parse_form(r, url +
	    u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len, 1) == -1)
		goto nomem;
	if (ctype_is(c, ct, "application/x-www-form-urlencoded")) {
		const unsigned char *b = c->inflated.len ? c->inflated.p : c->body.p;
		size_t n = c->inflated.len ? c->inflated.len : c->body.len;

		if (parse_form(r, (const char *)b, n, 0) == -1)
			goto nomem;
	} else if (ctype_is(c, ct, "multipart/form-data")) {
		snprintf(r->err, sizeof r->err, "multipart/form-data is not "
		    "supported: send application/json, application/msgpack or a "
		    "form");
		return 415;
	} else if (ctype_is(c, ct, "application/json") ||
	    ctype_is(c, ct, "application/csp-report")) {
		body = &r->json;
	} else if (ctype_is(c, ct, "application/msgpack") ||
	    ctype_is(c, ct, "application/x-msgpack")) {
		body = &r->msgpack;
	} else if (ctype_is(c, ct, "application/x-ndjson")) {
		body = &r->ndjson;
	}
	if (body) {
		body->set = body->inbody = 1;
		body->off = 0;
		body->len = c->inflated.len ? c->inflated.len : c->body.len;
	}
	if (request_time(r) == -1)
		return 400;
	if (r->msgpack.set)
		rc = decode_msgpack(r, param_ptr(r, &r->msgpack), r->msgpack.len);
	else if (r->json.set)
		rc = decode_json(r, (const char *)param_ptr(r, &r->json),
		    r->json.len, "json");
	else if (r->ndjson.set)
		rc = decode_ndjson(r, (const char *)param_ptr(r, &r->ndjson),
		    r->ndjson.len);
	else {
		snprintf(r->err, sizeof r->err, "'json', 'ndjson' or 'msgpack' "
		    "parameter is required");
		return 400;
	}
	if (rc == -1)
		return r->status ? r->status : strcmp(r->err, "out of memory") == 0 ?
		    500 : 400;
	return 0;
nomem:
	snprintf(r->err, sizeof r->err, "out of memory");
	return 500;
}

static httpin_req_t
handle_of(const struct conn *c)
{
	return (httpin_req_t)c->in->slots[c->slot].gen << 32 | c->slot;
}

/* Offer the decoded events to the tool. */
static void
offer(struct conn *c)
{
	struct httpin *in = c->in;
	struct httpin_batch b;
	int rc, was_held = c->state == ST_HELD;

	memset(&b, 0, sizeof b);
	b.tag = (const char *)c->tag.p;
	b.taglen = c->tag.len;
	b.entries = c->entries.p;
	b.len = c->entries.len;
	b.count = c->count;
	b.listener = c->l;
	b.addr = c->peerlen ? (const struct sockaddr *)&c->peer : NULL;
	b.addrlen = c->peerlen;
	c->state = ST_OFFER;
	c->replied = 0;
	if (!was_held)
		in->waiting++;
	rc = in->fn(in->ctx, &b, handle_of(c));
	if (rc == HTTPIN_HOLD) {
		c->state = ST_HELD;
		return;
	}
	c->state = ST_WAIT;
	if (rc == HTTPIN_TAKE && !c->replied)
		goto taken;
	in->waiting--;
	if (++in->slots[c->slot].gen == 0)
		in->slots[c->slot].gen = 1;
	c->state = ST_READ;
	if (rc == HTTPIN_TAKE && c->replied == 2)
		succeed(c);
	else
		fail(c, 503, 0, rc == HTTPIN_TAKE ? "the events were not delivered "
		    "downstream: send them again" : "not accepting events now: "
		    "send them again");
taken:
	/* the tool has copied what it keeps */
	buf_free(&c->entries);
	buf_free(&c->inflated);
	buf_free(&c->body);
	buf_free(&c->scratch);
	account(c);
}

/* A whole request came: answer it, or offer its events. */
static void
request_done(struct conn *c)
{
	struct req r;
	int status, m = c->p.method;

	memset(&r, 0, sizeof r);
	r.c = c;
	c->inreq = 0;	/* its clock stops */
	c->seq = 0;
	if (c->p.upgrade)
		c->keep = 0;	/* what follows is not HTTP */
	if (m == HTTP_GET || m == HTTP_HEAD) {
		respond(c, 200, NULL, "", 0, NULL, 0);
		return;
	}
	if (m == HTTP_OPTIONS) {
		preflight(c);
		return;
	}
	if (m != HTTP_POST && m != HTTP_PUT) {
		fail(c, 405, 0, "%s: use POST /TAG", http_method_str(m));
		return;
	}
	if (c->in->origins || c->in->cors_any) {
		const struct hdr *o = header(c, "Origin");

		if (!c->in->cors_any && o && !origin_ok(c->in, HVAL(c, o), o->vlen)) {
			fail(c, 403, 1, "CORS: origin not allowed");
			return;
		}
	}
	if ((status = decode(&r)) != 0) {
		fail(c, status, status == 413 || status == 500, "%s", r.err);
		return;
	}
	account(c);
	if (c->count == 0) {
		succeed(c);
		return;
	}
	offer(c);
}

/* Connections */

static int
reading(const struct conn *c)
{
	const struct httpin *in = c->in;

	if (c->state == ST_CLOSE)
		return c->out.len == 0;	/* lingering: input drained */
	return c->state == ST_READ && !c->eof && !in->stopped &&
	    c->out.len < OUT_MAX &&
	    (!in->over || c == in->eldest);
}

static void
update(struct conn *c)
{
	int r;

	if (c->fd < 0 || c->in->loop == NULL)
		return;
	r = reading(c);
	if (r && !ev_is_active(&c->rio)) {
		c->since = ev_now(c->in->loop);	/* its clock starts again */
		ev_io_start(c->in->loop, &c->rio);
	} else if (!r && ev_is_active(&c->rio)) {
		if (c->inreq)
			c->spent += ev_now(c->in->loop) - c->since;
		ev_io_stop(c->in->loop, &c->rio);
	}
}

/* Over the memory budget, only the connection whose request began first
 * is read: it can always finish, and its memory goes back. */
static void
budget(struct httpin *in)
{
	struct conn *c, *e = NULL;
	int over = in->mem > in->conf.max_memory;

	if (over)
		for (c = in->conns; c; c = c->next)
			if (c->inreq && c->state == ST_READ &&
			    (e == NULL || c->seq < e->seq))
				e = c;
	if (over == in->over && e == in->eldest)
		return;
	if (over && !in->over)
		LOG_WARN_LIMITED("http: %zu bytes held for requests, more than %zu: "
		    "reading one connection at a time", in->mem, in->conf.max_memory);
	in->over = over;
	in->eldest = e;
	for (c = in->conns; c; c = c->next)
		update(c);
}

static void
bad_http(struct conn *c, enum http_errno e)
{
	if (c->status == 0 && e == HPE_HEADER_OVERFLOW)
		c->status = 431;
	switch (c->status) {
	case 413:
		fail(c, 413, 1, "body over %zu bytes (body_size_limit)",
		    c->in->conf.body_size_limit);
		break;
	case 414:
		fail(c, 414, 1, "URL over %zu bytes", c->in->conf.max_url);
		break;
	case 431:
		fail(c, 431, 1, "headers over %zu bytes", c->in->conf.max_header_size);
		break;
	case 417:
		fail(c, 417, 1, "Expect: only 100-continue is supported");
		break;
	case 500:
		fail(c, 500, 1, "out of memory");
		break;
	default:
		fail(c, 400, 1, "malformed HTTP: %s", http_errno_description(e));
	}
	buf_reset(&c->inb);
}

/* Parse what was read, a request at a time.  The bytes parsed are let go
 * once at the end: pipelined requests cost no copy each. */
static void
conn_parse(struct conn *c)
{
	size_t off = 0;

	while (c->state == ST_READ && off < c->inb.len && c->out.len < OUT_MAX) {
		size_t n;
		enum http_errno e;

		n = http_parser_execute(&c->p, &settings, (const char *)c->inb.p +
		    off, c->inb.len - off);
		e = HTTP_PARSER_ERRNO(&c->p);
		off += n;
		if (e == HPE_PAUSED) {
			http_parser_pause(&c->p, 0);
			request_done(c);
			if (c->state == ST_READ || c->state == ST_CLOSE)
				request_reset(c);
			continue;
		}
		if (e != HPE_OK) {
			bad_http(c, e);
			break;
		}
		if (c->p.upgrade || n == 0) {
			buf_reset(&c->inb);
			break;
		}
	}
	buf_consume(&c->inb, off < c->inb.len ? off : c->inb.len);
	if (!c->inreq)
		buf_shrink(&c->inb, KEEP);
	account(c);
	budget(c->in);
	update(c);
}

static void
conn_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	size_t total = 0;
	ssize_t n;

	(void)loop;
	(void)revents;
	while (total < READ_TURN && reading(c)) {
		if (buf_reserve(&c->inb, READ_SIZE) == -1) {
			conn_close(c);
			return;
		}
		n = read(c->fd, c->inb.p + c->inb.len, c->inb.cap - c->inb.len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n == -1 || (n == 0 && (c->state == ST_CLOSE ||
		    c->out.len == 0))) {
			conn_close(c);	/* a request cut short is let go */
			return;
		}
		if (n == 0) {
			c->eof = 1;	/* answer what came, then close */
			break;
		}
		stats_of(c)->bytes += (size_t)n;
		total += (size_t)n;
		if (c->state == ST_CLOSE) {
			buf_reset(&c->inb);	/* lingering: thrown away */
			continue;
		}
		c->inb.len += (size_t)n;
		conn_parse(c);
	}
	update(c);
}

/* Closing: the response is written, then the write side shut; input is
 * drained a while so that the client reads it rather than a reset. */
static void
conn_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;
	ssize_t n;

	(void)revents;
	while (c->out.len > 0) {
		n = write(c->fd, c->out.p, c->out.len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n == -1) {
			conn_close(c);
			return;
		}
		buf_consume(&c->out, (size_t)n);
		c->last_out = ev_now(loop);
	}
	if (c->out.len > 0)
		return;
	ev_io_stop(loop, &c->wio);
	buf_shrink(&c->out, KEEP);
	if (c->state == ST_CLOSE) {
		if (c->in->stopped) {
			conn_close(c);
			return;
		}
		shutdown(c->fd, SHUT_WR);
		c->last_out = ev_now(loop);	/* the linger starts */
		buf_free(&c->inb);
		account(c);
		update(c);
		return;
	}
	conn_parse(c);	/* pipelined requests waiting */
	if (c->eof && c->state == ST_READ && c->out.len == 0)
		conn_close(c);
}

static void
slot_put(struct httpin *in, uint32_t i)
{
	in->slots[i].c = NULL;
	if (++in->slots[i].gen == 0)
		in->slots[i].gen = 1;
	in->slots[i].next = in->free_slot;
	in->free_slot = i;
}

static int
slot_get(struct httpin *in, struct conn *c)
{
	uint32_t i, n;
	struct slot *t;

	if (in->free_slot == SLOT_NONE) {
		n = in->nslots ? in->nslots * 2 : 16;
		if ((t = realloc(in->slots, n * sizeof *t)) == NULL)
			return -1;
		for (i = n; i-- > in->nslots; ) {
			t[i].gen = 1;
			t[i].c = NULL;
			t[i].next = in->free_slot;
			in->free_slot = i;
		}
		in->slots = t;
		in->nslots = n;
	}
	i = in->free_slot;
	in->free_slot = in->slots[i].next;
	in->slots[i].c = c;
	c->slot = i;
	return 0;
}

static struct conn *
conn_new(struct httpin *in, int fd, struct httpin_listener *l)
{
	struct conn *c = calloc(1, sizeof *c);

	if (c == NULL || slot_get(in, c) == -1) {
		free(c);
		return NULL;
	}
	c->in = in;
	c->l = l;
	c->fd = fd;
	c->keep = 1;
	http_parser_init(&c->p, HTTP_REQUEST);
	c->p.data = c;
	ev_io_init(&c->rio, conn_read, fd, EV_READ);
	c->rio.data = c;
	ev_io_init(&c->wio, conn_write, fd, EV_WRITE);
	c->wio.data = c;
	c->idle_since = c->last_out = now_of(in);
	c->next = in->conns;
	if (c->next)
		c->next->prevp = &c->next;
	c->prevp = &in->conns;
	in->conns = c;
	in->nconns++;
	stats_of(c)->accepted++;
	stats_of(c)->conns++;
	return c;
}

static void listen_start(struct httpin *in);

static void
conn_close(struct conn *c)
{
	struct httpin *in = c->in;
	struct buf *b[] = { &c->inb, &c->out, &c->url, &c->hbytes, &c->hidx,
	    &c->body, &c->tag, &c->entries, &c->scratch, &c->extra, &c->inflated,
	    &c->rec };

	if (c->state == ST_WAIT || c->state == ST_HELD || c->state == ST_OFFER)
		in->waiting--;
	slot_put(in, c->slot);
	if (c->fd >= 0 && in->loop) {
		ev_io_stop(in->loop, &c->rio);
		ev_io_stop(in->loop, &c->wio);
	}
	if (c->fd >= 0)
		close(c->fd);
	*c->prevp = c->next;
	if (c->next)
		c->next->prevp = c->prevp;
	in->nconns--;
	stats_of(c)->conns--;
	in->mem -= c->mem;
	if (in->eldest == c)
		in->eldest = NULL;
	for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
		buf_free(b[i]);
	free(c);
	if (in->loop && !in->stopped)
		listen_start(in);
	budget(in);
}

/* Listening */

static void
accept_again(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct httpin *in = w->data;

	(void)revents;
	ev_timer_stop(loop, w);
	listen_start(in);
}

/* Accepting goes on while there is room for a connection, and not while
 * an accept failed a moment ago. */
static void
listen_start(struct httpin *in)
{
	int on = !in->stopped && in->nconns < in->conf.max_connections &&
	    !ev_is_active(&in->accept_wait);

	for (struct httpin_listener *l = in->listeners; l; l = l->next) {
		if (l->fd < 0)
			continue;
		if (on)
			ev_io_start(in->loop, &l->io);
		else
			ev_io_stop(in->loop, &l->io);
	}
}

static void
listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct httpin_listener *l = w->data;
	struct httpin *in = l->in;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct conn *c;
	int fd, one = 1;

	(void)revents;
	while (in->nconns < in->conf.max_connections) {
		if ((fd = sock_accept_from(l->fd, &ss, &sslen)) == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			LOG_WARN_LIMITED("http %s: accept: %s: not accepting for %g s",
			    l->name, strerror(errno), ACCEPT_PAUSE);
			ev_timer_set(&in->accept_wait, ACCEPT_PAUSE, 0);
			ev_timer_start(loop, &in->accept_wait);
			listen_start(in);
			return;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if ((c = conn_new(in, fd, l)) == NULL) {
			close(fd);
			LOG_WARN_LIMITED("http %s: accept: out of memory", l->name);
			return;
		}
		if (sslen > sizeof c->peer)
			sslen = sizeof c->peer;
		memcpy(&c->peer, &ss, sslen);
		c->peerlen = sslen;
		update(c);
	}
	listen_start(in);	/* full: paused until one closes */
}

/* The clocks: keepalive_timeout between requests, request_timeout for a
 * request to arrive (while it is read) and for responses to be read,
 * LINGER for a closing connection. */
static void
sweep_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct httpin *in = w->data;
	const struct httpin_conf *cf = &in->conf;
	ev_tstamp now = ev_now(loop);
	struct conn *c, *next;

	(void)revents;
	for (c = in->conns; c; c = next) {
		next = c->next;
		if (c->state == ST_CLOSE) {
			if ((c->out.len == 0 && now - c->last_out >= LINGER) ||
			    (c->out.len > 0 && now - c->last_out >= cf->request_timeout))
				conn_close(c);
			continue;
		}
		if (c->out.len > 0 && now - c->last_out >= cf->request_timeout) {
			LOG_WARN_LIMITED("http connection %d: responses unread for "
			    "%g s: closing", c->fd, cf->request_timeout);
			conn_close(c);
			continue;
		}
		if (c->state != ST_READ)
			continue;
		if (c->inreq && ev_is_active(&c->rio) &&
		    c->spent + (now - c->since) >= cf->request_timeout) {
			fail(c, 408, 1, "the request did not arrive within %g s",
			    cf->request_timeout);
			buf_reset(&c->inb);
			account(c);
			update(c);
			continue;
		}
		if (!c->inreq && c->out.len == 0 && ev_is_active(&c->rio) &&
		    now - c->idle_since >= cf->keepalive_timeout)
			conn_close(c);
	}
	budget(in);
}

static struct httpin_listener *
listener_add(struct httpin *in, int fd)
{
	struct httpin_listener *l = calloc(1, sizeof *l), **lp;

	if (l == NULL)
		return NULL;
	l->in = in;
	l->fd = fd;
	if (sock_name(fd, 0, l->name, sizeof l->name) == -1)
		snprintf(l->name, sizeof l->name, "fd %d", fd);
	ev_io_init(&l->io, listen_cb, fd, EV_READ);
	l->io.data = l;
	for (lp = &in->listeners; *lp; lp = &(*lp)->next)
		;
	*lp = l;
	listen_start(in);
	return l;
}

struct httpin_listener *
httpin_listen_fd(struct httpin *in, int fd)
{
	return listener_add(in, fd);
}

struct httpin_listener *
httpin_listen(struct httpin *in, const char *spec, char *err, size_t errlen)
{
	char full[300];
	struct httpin_listener *l;
	enum sock_kind kind;
	int fd, e;

	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "tcp:", 4) == 0)
		snprintf(full, sizeof full, "%s", spec);
	else if (strchr(spec, ':') == NULL)
		snprintf(full, sizeof full, "tcp:0.0.0.0:%s", spec);
	else
		snprintf(full, sizeof full, "tcp:%s", spec);
	if ((fd = sock_listen(full, &kind, err, errlen)) == -1)
		return NULL;
	if (kind == SOCK_UNIX)
		sock_nonblock(fd);
	if ((l = listener_add(in, fd)) == NULL ||
	    (kind == SOCK_UNIX && (l->unlink_path = strdup(full + 5)) == NULL)) {
		e = errno;
		if (l == NULL)
			close(fd);	/* a listener made is closed by httpin_stop */
		snprintf(err, errlen, "%s: %s", spec, strerror(e));
		errno = e;
		return NULL;
	}
	return l;
}

const char *
httpin_listener_name(const struct httpin_listener *l)
{
	return l->name;
}

/* The whole */

static int
split_origins(struct httpin *in, const char *s, char *err, size_t errlen)
{
	while (*s) {
		size_t n = strcspn(s, ","), k = n;
		const char *p = s;
		char **t;

		while (k > 0 && (*p == ' ' || *p == '\t'))
			p++, k--;
		while (k > 0 && (p[k - 1] == ' ' || p[k - 1] == '\t'))
			k--;
		if (k == 1 && *p == '*')
			in->cors_any = 1;
		else if (k > 0) {
			if ((t = realloc(in->origins, (in->norigins + 1) *
			    sizeof *t)) == NULL)
				return -1;
			in->origins = t;
			if ((t[in->norigins] = strndup(p, k)) == NULL)
				return -1;
			in->norigins++;
		}
		s += n + (s[n] == ',');
	}
	if (in->conf.cors_allow_credentials && (in->cors_any || in->norigins == 0)) {
		snprintf(err, errlen, "cors_allow_credentials needs origins other "
		    "than '*' in cors_allow_origins");
		errno = EINVAL;
		return -1;
	}
	return 0;
}

struct httpin *
httpin_new(struct ev_loop *loop, const struct httpin_conf *conf, httpin_fn fn,
    void *ctx, char *err, size_t errlen)
{
	struct httpin *in = calloc(1, sizeof *in);

	if (in == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	in->loop = loop;
	in->conf = *conf;
	in->conf.cors_allow_origins = NULL;
	in->conf.tag_prefix = NULL;
	if (conf->tag_prefix && *conf->tag_prefix &&
	    (in->conf.tag_prefix = strdup(conf->tag_prefix)) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		free(in);
		return NULL;
	}
	in->fn = fn;
	in->ctx = ctx;
	in->free_slot = SLOT_NONE;
	if (in->conf.max_url > 65535)
		in->conf.max_url = 65535;	/* the URL parser's offsets */
	if (in->conf.max_header_size > 65536)
		in->conf.max_header_size = 65536;	/* within http_parser's 80k */
	if (in->conf.max_connections == 0)
		in->conf.max_connections = 1;
	if (in->conf.cors_allow_credentials && conf->cors_allow_origins == NULL) {
		snprintf(err, errlen, "cors_allow_credentials needs "
		    "cors_allow_origins");
		free((char *)in->conf.tag_prefix);
		free(in);
		errno = EINVAL;
		return NULL;
	}
	if (conf->cors_allow_origins &&
	    split_origins(in, conf->cors_allow_origins, err, errlen) == -1) {
		if (errno != EINVAL)
			snprintf(err, errlen, "%s", strerror(errno));
		httpin_free(in);
		return NULL;
	}
	ev_init(&in->accept_wait, accept_again);
	in->accept_wait.data = in;
	ev_init(&in->sweep, sweep_cb);
	in->sweep.data = in;
	if (loop) {
		double t = conf->keepalive_timeout < conf->request_timeout ?
		    conf->keepalive_timeout : conf->request_timeout;

		t /= 4;
		t = t < 0.05 ? 0.05 : t > 1 ? 1 : t;
		ev_timer_set(&in->sweep, t, t);
		ev_timer_start(loop, &in->sweep);
		ev_unref(loop);		/* the clocks alone do not keep it running */
	}
	return in;
}

static struct conn *
conn_of(struct httpin *in, httpin_req_t req)
{
	uint32_t i = (uint32_t)req, gen = (uint32_t)(req >> 32);

	if (i >= in->nslots || in->slots[i].gen != gen || in->slots[i].c == NULL)
		return NULL;
	return in->slots[i].c;
}

void
httpin_reply(struct httpin *in, httpin_req_t req, int ok)
{
	struct conn *c = conn_of(in, req);

	if (c == NULL)
		return;
	if (c->state == ST_OFFER) {
		c->replied = ok ? 2 : 1;	/* answered when the function returns */
		return;
	}
	if (c->state != ST_WAIT)
		return;
	in->waiting--;
	if (++in->slots[c->slot].gen == 0)
		in->slots[c->slot].gen = 1;
	c->state = ST_READ;
	if (ok)
		succeed(c);
	else
		fail(c, 503, 0, "the events were not delivered downstream: send "
		    "them again");
	if (c->state == ST_READ || c->state == ST_CLOSE)
		request_reset(c);
	if (in->stopped && c->state == ST_READ)
		c->state = ST_CLOSE;
	/* written, and the requests after it read, at the next turn */
}

void
httpin_retry(struct httpin *in)
{
	struct conn *c, *next;

	for (c = in->conns; c; c = next) {
		next = c->next;
		if (c->state != ST_HELD)
			continue;
		offer(c);
		if (c->state == ST_READ || c->state == ST_CLOSE) {
			request_reset(c);
			if (in->stopped)
				c->state = ST_CLOSE;
		}
		update(c);
	}
}

static void
stats_add(struct httpin_stats *to, const struct httpin_stats *s)
{
	to->accepted += s->accepted;
	to->conns += s->conns;
	to->requests += s->requests;
	to->events += s->events;
	to->bytes += s->bytes;
	to->status_4xx += s->status_4xx;
	to->status_5xx += s->status_5xx;
}

void
httpin_stats(const struct httpin *in, const struct httpin_listener *l,
    struct httpin_stats *st)
{
	memset(st, 0, sizeof *st);
	if (l) {
		*st = l->st;
	} else {
		stats_add(st, &in->total);
		for (l = in->listeners; l; l = l->next)
			stats_add(st, &l->st);
	}
	st->mem = in->mem;
	st->waiting = in->waiting;
}

void
httpin_stop(struct httpin *in)
{
	struct conn *c, *next;

	in->stopped = 1;
	for (struct httpin_listener *l = in->listeners; l; l = l->next) {
		if (l->fd < 0)
			continue;
		if (in->loop)
			ev_io_stop(in->loop, &l->io);
		close(l->fd);
		l->fd = -1;
		if (l->unlink_path)
			unlink(l->unlink_path);
	}
	if (in->loop)
		ev_timer_stop(in->loop, &in->accept_wait);
	for (c = in->conns; c; c = next) {
		next = c->next;
		if (c->state == ST_READ && c->out.len == 0)
			conn_close(c);
		else if (c->state == ST_READ)
			c->state = ST_CLOSE;
	}
}

void
httpin_free(struct httpin *in)
{
	struct httpin_listener *l;

	if (in == NULL)
		return;
	if (!in->stopped)
		httpin_stop(in);
	while (in->conns)
		conn_close(in->conns);
	while ((l = in->listeners) != NULL) {
		in->listeners = l->next;
		free(l->unlink_path);
		free(l);
	}
	if (in->loop && ev_is_active(&in->sweep)) {
		ev_ref(in->loop);
		ev_timer_stop(in->loop, &in->sweep);
	}
	for (size_t i = 0; i < in->norigins; i++)
		free(in->origins[i]);
	free(in->origins);
	free((char *)in->conf.tag_prefix);
	free(in->slots);
	free(in);
}

/* The probe: one connection without a socket or a loop. */

struct httpin_probe {
	struct httpin *in;
	struct conn *c;
	size_t events;
};

static int
probe_take(void *ctx, const struct httpin_batch *b, httpin_req_t req)
{
	struct httpin_probe *pr = ctx;
	struct stream_iter it;
	struct stream_event ev;
	size_t n = 0;
	int rc;

	/* what the tool is given must be canonical entries */
	stream_iter_init(&it, b->entries, b->len);
	while ((rc = stream_iter_next(&it, &ev)) == 1)
		n++;
	if (rc != 0 || n != b->count || b->taglen != strlen(b->tag))
		abort();
	pr->events += n;
	httpin_reply(pr->in, req, 1);
	return HTTPIN_TAKE;
}

struct httpin_probe *
httpin_probe_new(const struct httpin_conf *conf)
{
	struct httpin_probe *pr = calloc(1, sizeof *pr);
	char err[160];

	if (pr == NULL)
		return NULL;
	if ((pr->in = httpin_new(NULL, conf, probe_take, pr, err,
	    sizeof err)) == NULL || (pr->c = conn_new(pr->in, -1, NULL)) == NULL) {
		httpin_free(pr->in);
		free(pr);
		return NULL;
	}
	return pr;
}

int
httpin_probe_feed(struct httpin_probe *pr, const void *p, size_t n,
    struct buf *out, size_t *events)
{
	struct conn *c = pr->c;

	if (c == NULL)
		return -1;
	if (c->state != ST_CLOSE && buf_add(&c->inb, p, n) == -1)
		return -1;
	do {
		conn_parse(c);
		if (buf_add(out, c->out.p, c->out.len) == -1)
			return -1;
		buf_reset(&c->out);
	} while (c->state == ST_READ && c->inb.len > 0);
	*events = pr->events;
	if (c->state == ST_CLOSE) {
		conn_close(c);
		pr->c = NULL;
		return -1;
	}
	return 0;
}

void
httpin_probe_free(struct httpin_probe *pr)
{
	if (pr == NULL)
		return;
	httpin_free(pr->in);
	free(pr);
}
