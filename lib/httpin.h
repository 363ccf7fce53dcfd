/* httpin: Fluentd's in_http on a libev loop.
 *
 * Requests are parsed with libhttp-parser (any split; pipelined requests
 * are answered in order, one at a time: while one waits for the tool's
 * reply, the next is not read); a request's events are handed to the
 * tool as one batch of canonical PackedForward entries (lib/stream), and
 * the tool answers later, once the hand-off downstream succeeded or
 * failed, with httpin_reply.  Nothing is answered 200 before that.
 *
 * Requests (as in_http):
 *	POST /TAG (or PUT)  events.  The tag is the path without its leading
 *		'/', each '/' made '.', then percent-decoded ("/app/access" ->
 *		"app.access"; trailing '/'s are dropped, as Ruby's split does).
 *		in_http does not percent-decode; lf does, so "/a%20b" is "a b".
 *		With tag_prefix, "PREFIX.TAG".  The events come from the
 *		parameters msgpack, json or ndjson (the first one present, in that
 *		order), taken from the query string, then (overriding) from the
 *		body:
 *		  Content-Type application/json, application/csp-report: the
 *			body is json
 *		  application/msgpack, application/x-msgpack: the body is msgpack
 *		  application/x-ndjson: the body is ndjson
 *		  application/x-www-form-urlencoded: the body's fields
 *			(json=..., msgpack=..., ndjson=..., time=...)
 *		  anything else, or none: the body is ignored
 *		(media types are matched without case, parameters after ';'
 *		ignored.)  json: an object (one event) or an array of objects;
 *		ndjson: lines of those, blank lines skipped; msgpack: maps or
 *		arrays of maps, one after another.
 *		Content-Encoding gzip or deflate is inflated first, up to
 *		decompression_size_limit bytes.
 *	GET, HEAD /ANY  200 with an empty body (in_http's health check).
 *	OPTIONS  a CORS preflight, see cors_allow_origins.
 *	other methods  405.
 *
 * Event time: ?time= (or a time= form field) is epoch seconds, a decimal
 * with an optional fraction ("1441588984.5"), read exactly to the
 * nanosecond; 0 or empty means now.  It applies to every event of the
 * request and the records keep their "time" key.  Without it, a record's
 * "time" key is removed from it and gives the time (in_http's default
 * parser): an integer or float of epoch seconds, or an EventTime (msgpack
 * ext 0); null or false, or no key, is now.  Any other value (a string,
 * say) makes the request a 400, as in_http does.
 *
 * add_http_headers adds each request header as HTTP_NAME (name upper-cased,
 * '-' made '_') with its value as a string; add_query_params each query
 * parameter as QUERY_NAME; add_remote_addr the key REMOTE_ADDR, the peer's
 * address or, as in_http does, the first element of the first
 * X-Forwarded-For header (spaces trimmed: a client can set it, so it is
 * only as trustworthy as the proxy in front).  The keys are added after
 * the record's own; a record key of the same name stays before them, so
 * a reader that keeps the last of duplicate keys (msgpack-ruby, Python)
 * sees in_http's result.
 *
 * Responses are HTTP/1.1, Content-Type text/plain, with Content-Length and
 * "Connection: keep-alive" or "Connection: close".  An error's body is two
 * lines, in_http's: "400 Bad Request\n<what was wrong>\n".
 *	200 OK, empty body  the tool took the events and replied ok, or the
 *		request carried no event (an empty array)
 *	204 No Content  the same with use_204_response
 *	200 and a 1x1 GIF  the same with respond_with_empty_img
 *	400  bad input, the message says what: no tag (or a control
 *		character in it); no json, ndjson or
 *		msgpack parameter; the JSON or msgpack is invalid, truncated,
 *		nested too deep, or not an object; a time that is not a number;
 *		a body that will not inflate.  The whole request is refused
 *		(in_http drops bad records silently and answers 200; lf says
 *		so, and takes none of the request's events, so a fixed request
 *		can be sent again without duplicates).  The connection is kept.
 *	400 and close  malformed HTTP (the parser's reason in the message)
 *	403  OPTIONS without CORS configured, from an origin not allowed, or
 *		with an Access-Control-Request-Method other than POST; a request
 *		whose Origin is not allowed (and close)
 *	405  a method other than POST, PUT, GET, HEAD, OPTIONS
 *	408 and close  a request not all received within request_timeout
 *	413 and close  a body over body_size_limit (as soon as Content-Length
 *		says so, or when "Expect: 100-continue" comes with it); a body
 *		inflating to more than decompression_size_limit, or whose events
 *		take more than that once decoded (the keys add_http_headers adds
 *		to each of many small records would multiply them)
 *	414 and close  a URL over max_url
 *	415  multipart/form-data, or a Content-Encoding other than gzip,
 *		deflate or identity
 *	417 and close  an Expect other than 100-continue
 *	431 and close  headers over max_header_size
 *	500 and close  out of memory
 *	503 with "Retry-After: 1"  the tool refused the events, or replied
 *		that the hand-off failed
 * A message quotes at most 40 bytes of what the client sent, control
 * characters made '?'; each 4xx is logged, rate-limited.
 * "Expect: 100-continue" is answered "100 Continue" when the length is
 * within the limit.  Keep-alive: HTTP/1.1 keeps the connection unless
 * "Connection: close"; HTTP/1.0 closes unless "Connection: keep-alive".
 *
 * Bounds, all per struct httpin_conf: a connection idle between requests
 * for keepalive_timeout is closed; a request must arrive whole within
 * request_timeout of its first byte (time the connection is not read for
 * back pressure does not count), else 408; a connection that does not read
 * its responses for request_timeout is closed; at most max_connections
 * connections (past it accepting pauses until one closes; out of
 * descriptors, it pauses 0.5 s); memory held for requests being received
 * (bodies, headers, pending responses, decoded events) by all connections
 * together at most max_memory: past it, only the connection whose request
 * began first is read, the others wait (as lib/ingest; decoding one
 * request may take more for a moment: its body, inflated body and events
 * are each bounded as above).  A client that
 * does not read its responses is not read either once 64 KiB of them wait.
 */
#ifndef LF_HTTPIN_H
#define LF_HTTPIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

#include "buf.h"

/* Defaults, with in_http's names where it has one. */
#define HTTPIN_PORT			"9880"	/* in_http's port */
#define HTTPIN_BODY_SIZE_LIMIT		((size_t)32 << 20)	/* body_size_limit */
#define HTTPIN_DECOMPRESSION_SIZE_LIMIT	((size_t)256 << 20)	/* decompression_size_limit */
#define HTTPIN_KEEPALIVE_TIMEOUT	10.0	/* keepalive_timeout, seconds */
#define HTTPIN_REQUEST_TIMEOUT		60.0	/* lf: a whole request */
#define HTTPIN_MAX_HEADER_SIZE		(16u << 10)	/* lf: request headers, as Node.js */
#define HTTPIN_MAX_URL			(8u << 10)	/* lf: the URL, as Apache's 8190 */
#define HTTPIN_MAX_CONNECTIONS		1024u	/* lf */
#define HTTPIN_MAX_MEMORY		((size_t)512 << 20)	/* lf, as lib/ingest */
#define HTTPIN_RETRY_AFTER		1	/* seconds, in a 503 */

/* Options, each with the lf-recv option it is meant for. */
struct httpin_conf {
	size_t body_size_limit;		/* --http-body-size-limit SIZE */
	size_t decompression_size_limit; /* --http-decompression-size-limit SIZE */
	double keepalive_timeout;	/* --http-keepalive-timeout DURATION */
	double request_timeout;		/* --http-request-timeout DURATION */
	size_t max_header_size;		/* --http-max-header-size SIZE (<= 64k) */
	size_t max_url;			/* --http-max-url-size SIZE (< 64k) */
	size_t max_connections;		/* --http-max-connections N */
	size_t max_memory;		/* --http-max-memory SIZE */
	int add_http_headers;		/* --add-http-headers[=BOOL] */
	int add_remote_addr;		/* --add-remote-addr[=BOOL] */
	int add_query_params;		/* --add-query-params[=BOOL] */
	int use_204_response;		/* --use-204-response[=BOOL] */
	int respond_with_empty_img;	/* --respond-with-empty-img[=BOOL] */
	/* --cors-allow-origins LIST: origins separated by commas, each exact
	 * ("https://a.example"), "*" for any, or with one '*' standing for
	 * any run ("*.example.com"); NULL: no CORS.  With CORS, a POST
	 * whose Origin is none of them is 403; one without Origin (not from
	 * a browser) is served; responses carry Access-Control-Allow-Origin;
	 * OPTIONS with Access-Control-Request-Method POST is answered 200
	 * with Access-Control-Allow-Methods: POST and the requested headers
	 * allowed. */
	const char *cors_allow_origins;
	int cors_allow_credentials;	/* --cors-allow-credentials[=BOOL]: needs
					 * origins other than "*" */
	const char *tag_prefix;		/* --add-tag-prefix PREFIX (lf-recv's) */
};

void httpin_conf_default(struct httpin_conf *conf);

/* One request's events, valid only during the call. */
struct httpin_batch {
	const char *tag;		/* NUL-terminated too */
	size_t taglen;
	const unsigned char *entries;	/* canonical [EventTime, map] entries */
	size_t len;
	size_t count;			/* > 0 */
	const struct httpin_listener *listener;
	const struct sockaddr *addr;	/* the peer (not X-Forwarded-For) */
	socklen_t addrlen;
};

/* A request waiting for its reply: an index and a generation, never a
 * pointer.  Replying to a request whose client has gone does nothing. */
typedef uint64_t httpin_req_t;

enum { HTTPIN_TAKE = 0, HTTPIN_HOLD = 1, HTTPIN_REFUSE = -1 };

/* The tool's function: TAKE (it copies what it keeps of the batch, then
 * calls httpin_reply(req) exactly once, inside the function or later), HOLD (no room yet: the connection is not
 * read, the same batch is offered again by httpin_retry, with the same
 * req), REFUSE (answered 503 with Retry-After). */
typedef int (*httpin_fn)(void *ctx, const struct httpin_batch *b,
    httpin_req_t req);

struct httpin;
struct httpin_listener;

/* The strings of conf are copied.  NULL with errno and a reason in err
 * (a bad conf: EINVAL). */
struct httpin *httpin_new(struct ev_loop *loop, const struct httpin_conf *conf,
    httpin_fn fn, void *ctx, char *err, size_t errlen);

/* Listen on "[ADDR:]PORT" (ADDR default 0.0.0.0; "[::1]:9880" for IPv6),
 * or on "tcp:HOST:PORT" or "unix:PATH" as sock_listen takes.  NULL with
 * errno and err. */
struct httpin_listener *httpin_listen(struct httpin *in, const char *spec,
    char *err, size_t errlen);
/* Serve a socket already listening (non-blocking); it is closed by
 * httpin_stop.  NULL with errno. */
struct httpin_listener *httpin_listen_fd(struct httpin *in, int fd);
/* "tcp:127.0.0.1:9880" (the port taken if 0 was asked). */
const char *httpin_listener_name(const struct httpin_listener *l);

/* The hand-off of a taken request: ok 1 -> 200 (204, GIF), ok 0 -> 503
 * with Retry-After.  The response is written at the next turn of the loop;
 * pipelined requests after it are read then. */
void httpin_reply(struct httpin *in, httpin_req_t req, int ok);
/* Offer held batches again (outside the tool's function). */
void httpin_retry(struct httpin *in);

/* Counters of a listener, or of all of them (l NULL). */
struct httpin_stats {
	unsigned long accepted;		/* connections accepted */
	unsigned long conns;		/* open now */
	unsigned long requests;		/* answered (any status) */
	unsigned long events;		/* in requests answered 200/204 */
	unsigned long long bytes;	/* read from clients */
	unsigned long status_4xx, status_5xx;
	size_t mem;			/* bytes held now (all listeners) */
	size_t waiting;			/* requests taken or held, not answered */
};
void httpin_stats(const struct httpin *in, const struct httpin_listener *l,
    struct httpin_stats *st);

/* Stop accepting; connections without a request taken or held are closed,
 * the others are closed once answered.  Drained when stats.waiting is 0. */
void httpin_stop(struct httpin *in);
/* Close everything (a request still waiting is lost: its client re-sends). */
void httpin_free(struct httpin *in);

/* The parser and decoding without sockets, for the fuzzer and tests: feed
 * request bytes (any split); each complete request's response is appended
 * to out, the events it would hand off counted in *events.  The tool's
 * function is not called: every request is taken and replied ok.
 * 0, or -1 once the connection would be closed. */
struct httpin_probe;
struct httpin_probe *httpin_probe_new(const struct httpin_conf *conf);
int httpin_probe_feed(struct httpin_probe *pr, const void *p, size_t n,
    struct buf *out, size_t *events);
void httpin_probe_free(struct httpin_probe *pr);

#endif
