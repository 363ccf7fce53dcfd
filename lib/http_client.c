#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "http_client.h"
#include "log.h"

struct http_sock {
	ev_io w;
	curl_socket_t fd;
	struct http_client *h;
	struct http_sock *next, **prevp;
};

struct http_call {
	struct http_client *h;
	CURL *e;
	struct curl_slist *hdrs;
	http_done_fn done;
	void *arg;
	int fd;
	const unsigned char *mem;
	uint64_t off, len, pos;
	struct buf body;		/* up to HTTP_BODY_KEEP bytes */
	ev_timer stall;			/* read_timeout */
	ev_tstamp last;			/* the last byte moved */
	char err[CURL_ERROR_SIZE];
	struct http_call *next, **prevp;
};

struct http_client {
	struct ev_loop *loop;
	struct http_client_conf conf;
	CURLM *m;
	ev_timer t;
	struct http_call *calls;
	struct http_sock *socks;
	unsigned ncalls;
};

static int curl_ready;

static void
link_call(struct http_client *h, struct http_call *c)
{
	c->next = h->calls;
	c->prevp = &h->calls;
	if (h->calls)
		h->calls->prevp = &c->next;
	h->calls = c;
	h->ncalls++;
}

static void
unlink_call(struct http_call *c)
{
	*c->prevp = c->next;
	if (c->next)
		c->next->prevp = c->prevp;
	c->h->ncalls--;
}

static void
call_free(struct http_call *c)
{
	struct curl_slist *l;

	ev_timer_stop(c->h->loop, &c->stall);
	/* the headers may hold a key (Authorization) */
	for (l = c->hdrs; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	if (c->e) {
		curl_multi_remove_handle(c->h->m, c->e);
		curl_easy_cleanup(c->e);
	}
	curl_slist_free_all(c->hdrs);
	buf_free(&c->body);
	free(c);
}

/* ---- libcurl's callbacks for one transfer ---- */

static size_t
read_cb(char *p, size_t size, size_t nitems, void *arg)
{
	struct http_call *c = arg;
	size_t want = size * nitems;
	ssize_t r;

	c->last = ev_now(c->h->loop);
	if (c->pos >= c->len)
		return 0;
	if (want > c->len - c->pos)
		want = (size_t)(c->len - c->pos);
	if (c->mem) {
		memcpy(p, c->mem + c->pos, want);
		c->pos += want;
		return want;
	}
	do
		r = pread(c->fd, p, want, (off_t)(c->off + c->pos));
	while (r == -1 && errno == EINTR);
	if (r <= 0) {
		/* the file shrank or failed under us: never send less than
		 * Content-Length said as if it were whole */
		return CURL_READFUNC_ABORT;
	}
	c->pos += (uint64_t)r;
	return (size_t)r;
}

static int
seek_cb(void *arg, curl_off_t off, int origin)
{
	struct http_call *c = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > c->len)
		return CURL_SEEKFUNC_CANTSEEK;
	c->pos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static size_t
write_cb(char *p, size_t size, size_t nitems, void *arg)
{
	struct http_call *c = arg;
	size_t n = size * nitems, keep = 0;

	c->last = ev_now(c->h->loop);
	if (c->body.len < HTTP_BODY_KEEP)
		keep = HTTP_BODY_KEEP - c->body.len;
	if (keep > n)
		keep = n;
	if (keep && buf_add(&c->body, p, keep) == -1)
		return 0;	/* out of memory: fail the call */
	return n;
}

static size_t
header_cb(char *p, size_t size, size_t nitems, void *arg)
{
	struct http_call *c = arg;

	(void)p;
	c->last = ev_now(c->h->loop);
	return size * nitems;
}

/* ---- the multi handle and the loop ---- */

static enum http_fail
classify(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return HTTP_FAIL_NONE;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTP_FAIL_TIMEOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return HTTP_FAIL_CONNECT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
		return HTTP_FAIL_TLS;
	default:
		return HTTP_FAIL_OTHER;
	}
}

/* Answer every finished transfer.  A callback may start or cancel
 * other calls: each message is read afresh from the multi handle. */
static void
finished(struct http_client *h)
{
	struct http_result r;
	struct http_call *c;
	CURLMsg *msg;
	int left;
	curl_off_t up;
	char *priv;

	while ((msg = curl_multi_info_read(h->m, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		priv = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		c = (struct http_call *)(void *)priv;
		memset(&r, 0, sizeof r);
		r.fail = classify(msg->data.result);
		if (r.fail == HTTP_FAIL_NONE)
			curl_easy_getinfo(c->e, CURLINFO_RESPONSE_CODE, &r.status);
		else
			r.error = c->err[0] ? c->err :
			    curl_easy_strerror(msg->data.result);
		if (curl_easy_getinfo(c->e, CURLINFO_SIZE_UPLOAD_T, &up) ==
		    CURLE_OK && up > 0)
			r.sent = (uint64_t)up;
		r.body = c->body.p;
		r.bodylen = c->body.len;
		unlink_call(c);
		curl_multi_remove_handle(h->m, c->e);
		c->done(c->arg, &r);
		call_free(c);
	}
}

/* No byte moved for read_timeout: the call fails as a timeout.  Not a
 * libcurl low-speed limit: that averages over seconds, so a request
 * whose body went out fast would wait far longer than asked. */
static void
stall_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_call *c = w->data;
	struct http_result r;
	double left = c->last + c->h->conf.read_timeout - ev_now(loop);

	(void)revents;
	if (left > 0) {
		ev_timer_set(w, left, 0.);
		ev_timer_start(loop, w);
		return;
	}
	memset(&r, 0, sizeof r);
	r.fail = HTTP_FAIL_TIMEOUT;
	r.error = "no progress within the read timeout";
	r.sent = c->pos;
	unlink_call(c);
	curl_multi_remove_handle(c->h->m, c->e);
	c->done(c->arg, &r);
	call_free(c);
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_sock *s = w->data;
	struct http_client *h = s->h;
	int flags = 0, running;

	(void)loop;
	if (revents & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->m, s->fd, flags, &running);
	finished(h);
}

static void
timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_client *h = w->data;
	int running;

	(void)loop, (void)revents;
	curl_multi_socket_action(h->m, CURL_SOCKET_TIMEOUT, 0, &running);
	finished(h);
}

/* CURLMOPT_TIMERFUNCTION: libcurl wants socket_action after ms; never
 * call it from here (libcurl forbids it): 0 means the next loop turn. */
static int
multi_timer_cb(CURLM *m, long ms, void *arg)
{
	struct http_client *h = arg;

	(void)m;
	ev_timer_stop(h->loop, &h->t);
	if (ms >= 0) {
		ev_timer_set(&h->t, (double)ms / 1000., 0.);
		ev_timer_start(h->loop, &h->t);
	}
	return 0;
}

static void
sock_free(struct http_client *h, struct http_sock *s)
{
	ev_io_stop(h->loop, &s->w);
	*s->prevp = s->next;
	if (s->next)
		s->next->prevp = s->prevp;
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what libcurl wants. */
static int
multi_sock_cb(CURL *e, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct http_client *h = arg;
	struct http_sock *s = sockp;
	int ev = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			sock_free(h, s);
			curl_multi_assign(h->m, fd, NULL);
		}
		return 0;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof *s)) == NULL)
			return -1;	/* libcurl fails the transfer */
		s->fd = fd;
		s->h = h;
		s->next = h->socks;
		s->prevp = &h->socks;
		if (h->socks)
			h->socks->prevp = &s->next;
		h->socks = s;
		ev_init(&s->w, io_cb);
		s->w.data = s;
		curl_multi_assign(h->m, fd, s);
	}
	if (what & CURL_POLL_IN)
		ev |= EV_READ;
	if (what & CURL_POLL_OUT)
		ev |= EV_WRITE;
	ev_io_stop(h->loop, &s->w);
	ev_io_set(&s->w, fd, ev);
	ev_io_start(h->loop, &s->w);
	return 0;
}

struct http_client *
http_client_new(struct ev_loop *loop, const struct http_client_conf *conf)
{
	struct http_client *h;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			log_error("libcurl cannot be initialised");
			return NULL;
		}
		curl_ready = 1;
	}
	if ((h = calloc(1, sizeof *h)) == NULL || (h->m = curl_multi_init()) ==
	    NULL) {
		free(h);
		log_error("out of memory");
		return NULL;
	}
	h->loop = loop;
	h->conf = *conf;
	ev_init(&h->t, timer_cb);
	h->t.data = h;
	curl_multi_setopt(h->m, CURLMOPT_SOCKETFUNCTION, multi_sock_cb);
	curl_multi_setopt(h->m, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->m, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
	curl_multi_setopt(h->m, CURLMOPT_TIMERDATA, h);
	return h;
}

void
http_client_free(struct http_client *h)
{
	if (h == NULL)
		return;
	while (h->calls) {
		struct http_call *c = h->calls;

		unlink_call(c);
		call_free(c);
	}
	curl_multi_cleanup(h->m);
	while (h->socks)
		sock_free(h, h->socks);
	ev_timer_stop(h->loop, &h->t);
	free(h);
	/* one client per process in lf: the last one lets libcurl go */
	if (curl_ready) {
		curl_global_cleanup();
		curl_ready = 0;
	}
}

static int
set_method(struct http_call *c, const struct http_req *r)
{
	CURL *e = c->e;
	int body = r->body_len > 0;

	if (strcmp(r->method, "PUT") == 0) {
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
		    (curl_off_t)r->body_len);
	} else if (strcmp(r->method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)r->body_len);
		if (!body)
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
	} else if (strcmp(r->method, "GET") == 0) {
		if (body)
			return -1;
	} else {
		return -1;
	}
	return 0;
}

static int
set_options(struct http_call *c, const struct http_req *r)
{
	const struct http_client_conf *f = &c->h->conf;
	CURL *e = c->e;
	const char *const *hp;
	struct curl_slist *l;

	/* libcurl would wait for 100 Continue before a body of 1 MiB or
	 * more; td-client never asks for it, and it costs a round trip */
	if ((c->hdrs = curl_slist_append(NULL, "Expect:")) == NULL)
		return -1;
	for (hp = r->headers; hp && *hp; hp++) {
		if ((l = curl_slist_append(c->hdrs, *hp)) == NULL)
			return -1;
		c->hdrs = l;
	}
	if (curl_easy_setopt(e, CURLOPT_URL, r->url) != CURLE_OK)
		return -1;
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)(void *)c);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->err);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(e, CURLOPT_READDATA, c);
	curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_cb);
	curl_easy_setopt(e, CURLOPT_SEEKDATA, c);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	if (f->user_agent)
		curl_easy_setopt(e, CURLOPT_USERAGENT, f->user_agent);
	if (f->connect_timeout > 0)
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
		    (long)ceil(f->connect_timeout * 1000));
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	if (f->total_timeout > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
		    (long)ceil(f->total_timeout * 1000));
	if (f->proxy)
		curl_easy_setopt(e, CURLOPT_PROXY, f->proxy);
	if (f->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, f->ca_file);
	if (f->ca_path)
		curl_easy_setopt(e, CURLOPT_CAPATH, f->ca_path);
	return set_method(c, r);
}

struct http_call *
http_start(struct http_client *h, const struct http_req *r, http_done_fn done,
    void *arg)
{
	struct http_call *c;

	if ((c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	ev_timer_init(&c->stall, stall_cb, h->conf.read_timeout, 0.);
	c->stall.data = c;
	c->h = h;
	c->done = done;
	c->arg = arg;
	c->fd = r->body_fd;
	c->mem = r->body;
	c->off = r->body_off;
	c->len = r->body_len;
	if ((c->e = curl_easy_init()) == NULL || set_options(c, r) == -1) {
		call_free(c);
		errno = EINVAL;
		return NULL;
	}
	if (curl_multi_add_handle(h->m, c->e) != CURLM_OK) {
		curl_easy_cleanup(c->e);
		c->e = NULL;
		call_free(c);
		errno = ENOMEM;
		return NULL;
	}
	link_call(h, c);
	c->last = ev_now(h->loop);
	if (h->conf.read_timeout > 0)
		ev_timer_start(h->loop, &c->stall);
	return c;
}

void
http_cancel(struct http_call *c)
{
	if (c == NULL)
		return;
	unlink_call(c);
	call_free(c);
}

unsigned
http_in_flight(const struct http_client *h)
{
	return h->ncalls;
}

const char *
http_client_version(void)
{
	static char v[64];

	if (v[0] == '\0')
		snprintf(v, sizeof v, "libcurl/%s",
		    curl_version_info(CURLVERSION_NOW)->version);
	return v;
}

int
http_header_safe(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return 0;
	return 1;
}
