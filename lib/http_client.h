/* http_client: HTTP(S) requests on libcurl's multi interface, driven by
 * a libev loop (CURLMOPT_SOCKETFUNCTION and CURLMOPT_TIMERFUNCTION tied
 * to ev_io and ev_timer watchers), so a tool that uploads never blocks
 * its loop on a request: any number are in flight at once, and each is
 * answered through a callback from that loop.
 *
 * Connections are kept and reused by the multi handle (keep-alive to
 * the same host), which Fluentd's td-client does not do (a connection
 * per request).  No request is ever retried here: a PUT sent again is
 * the caller's decision, and whether it may be is the protocol's.
 *
 * Timeouts: connect_timeout bounds the TCP and TLS connection;
 * read_timeout is a stall timeout, no byte sent or received for that
 * long (an ev_timer of the call's own, not libcurl's low-speed limit,
 * which averages over seconds), so it covers both td-client's
 * send_timeout and read_timeout; total_timeout (0: none) bounds the
 * whole request.
 *
 *	struct http_client *h = http_client_new(loop, &conf);
 *	struct http_req r = { .method = "PUT", .url = u, .headers = hs,
 *	    .body_fd = fd, .body_len = n };
 *	struct http_call *c = http_start(h, &r, done, arg);
 *	... done(arg, &result) runs once from the loop, unless
 *	http_cancel(c) came first ...
 *	http_client_free(h);
 */
#ifndef LF_HTTP_CLIENT_H
#define LF_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#define HTTP_BODY_KEEP	65536	/* bytes of a response body kept */

struct http_client_conf {
	double connect_timeout;		/* seconds; 0: libcurl's (300) */
	double read_timeout;		/* seconds without progress; 0: none */
	double total_timeout;		/* seconds for the whole call; 0: none */
	const char *proxy;		/* NULL: libcurl's (http_proxy, ...) */
	const char *ca_file;		/* NULL: the system's */
	const char *ca_path;
	const char *user_agent;		/* NULL: none sent */
};

/* What went wrong below HTTP, for counters; the text says more. */
enum http_fail {
	HTTP_FAIL_NONE,		/* an answer came: status is set */
	HTTP_FAIL_TIMEOUT,	/* connect, stall or total timeout */
	HTTP_FAIL_CONNECT,	/* refused, unreachable, no such host */
	HTTP_FAIL_TLS,		/* handshake or certificate */
	HTTP_FAIL_OTHER		/* reset, closed early, malformed answer, ... */
};

struct http_result {
	long status;			/* 0 unless fail is HTTP_FAIL_NONE */
	enum http_fail fail;
	const char *error;		/* libcurl's words when fail != NONE */
	const unsigned char *body;	/* the first HTTP_BODY_KEEP bytes */
	size_t bodylen;
	uint64_t sent;			/* request body bytes sent */
};

/* A request: method "PUT", "POST" (a body or none), "GET".  headers is
 * a NULL-ended array of "Name: value" lines, copied at http_start.  The
 * body is body_len bytes from body_fd at body_off (read with pread: the
 * descriptor's offset is not used or moved), or from body (memory the
 * caller keeps until the answer), or none. */
struct http_req {
	const char *method;
	const char *url;
	const char *const *headers;
	int body_fd;			/* -1 if body or none */
	uint64_t body_off, body_len;
	const void *body;
};

struct http_client;
struct http_call;

typedef void (*http_done_fn)(void *arg, const struct http_result *r);

/* NULL (with a log line) if libcurl cannot be set up. */
struct http_client *http_client_new(struct ev_loop *loop,
    const struct http_client_conf *conf);
/* Calls still in flight are cancelled, without their callbacks. */
void http_client_free(struct http_client *h);

/* Start r; done(arg, result) is called once from the loop, never from
 * inside http_start.  NULL if the request cannot be made (out of
 * memory, libcurl refused it), with errno set. */
struct http_call *http_start(struct http_client *h, const struct http_req *r,
    http_done_fn done, void *arg);
/* Forget c: its callback is never called.  Not from inside it. */
void http_cancel(struct http_call *c);

/* Requests in flight. */
unsigned http_in_flight(const struct http_client *h);

/* "libcurl/7.88.1", for a User-Agent. */
const char *http_client_version(void);

/* A value that is safe in a header line: no CR, LF or NUL.  1 or 0. */
int http_header_safe(const char *s, size_t n);

#endif
