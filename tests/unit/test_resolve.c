/* Unit tests for lib/resolve (and the name path of lib/dial): numeric
 * and localhost lookups, Fluentd's expire_dns_cache rules on a clock the
 * test sets, coalescing, the pending bound, the caller's timeout,
 * cancel, reverse lookups and their cache, shutdown with lookups stuck
 * in a worker, and dial's round robin and failover order over a name's
 * addresses with the stand-in fd replaced under a libev watcher.
 *
 * getaddrinfo, freeaddrinfo and getnameinfo are defined here: names
 * that start with "fake-" are answered from a table (and may hang until
 * the test lets them go); others go to the C library. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "dial.h"
#include "log.h"
#include "resolve.h"

/* ---- the fake C library ---- */

static pthread_mutex_t fk_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fk_cv = PTHREAD_COND_INITIALIZER;
static int fk_hold;		/* "fake-hang*" waits while set */
static int fk_calls;		/* fake getaddrinfo calls answered */
static int fk_inside;		/* calls inside now */
static char fk_addrs[256];	/* "fake-*": these, space separated */
static char fk_tag[] = "fake";

static void
fk_set(const char *addrs)
{
	pthread_mutex_lock(&fk_mu);
	snprintf(fk_addrs, sizeof fk_addrs, "%s", addrs);
	pthread_mutex_unlock(&fk_mu);
}

static void
fk_release(void)
{
	pthread_mutex_lock(&fk_mu);
	fk_hold = 0;
	pthread_cond_broadcast(&fk_cv);
	pthread_mutex_unlock(&fk_mu);
}

static int
fk_get(int *inside)
{
	int n;

	pthread_mutex_lock(&fk_mu);
	n = fk_calls;
	if (inside)
		*inside = fk_inside;
	pthread_mutex_unlock(&fk_mu);
	return n;
}

/* One "ADDR,PORT" as an addrinfo. */
static struct addrinfo *
fk_one(const char *w)
{
	struct {
		struct addrinfo ai;
		struct sockaddr_in in;
	} *f;
	char a[64], *c;

	snprintf(a, sizeof a, "%s", w);
	if ((c = strchr(a, ',')) == NULL || (f = calloc(1, sizeof *f)) == NULL)
		return NULL;
	*c = '\0';
	f->in.sin_family = AF_INET;
	f->in.sin_port = htons((uint16_t)atoi(c + 1));
	inet_pton(AF_INET, a, &f->in.sin_addr);
	f->ai.ai_family = AF_INET;
	f->ai.ai_socktype = SOCK_STREAM;
	f->ai.ai_addrlen = sizeof f->in;
	f->ai.ai_addr = (struct sockaddr *)&f->in;
	f->ai.ai_canonname = fk_tag;
	return &f->ai;
}

static int
fk_answer(const char *node, struct addrinfo **res)
{
	char buf[256], *p = buf, *w;
	struct addrinfo *head = NULL, **tail = &head;

	pthread_mutex_lock(&fk_mu);
	fk_inside++;
	while (fk_hold && strncmp(node, "fake-hang", 9) == 0)
		pthread_cond_wait(&fk_cv, &fk_mu);
	fk_inside--;
	fk_calls++;
	snprintf(buf, sizeof buf, "%s", fk_addrs);
	pthread_mutex_unlock(&fk_mu);
	if (strcmp(node, "fake-none") == 0)
		return EAI_NONAME;
	while ((w = strsep(&p, " ")) != NULL)
		if (*w && (*tail = fk_one(w)) != NULL)
			tail = &(*tail)->ai_next;
	if (head == NULL)
		return EAI_NONAME;
	*res = head;
	return 0;
}

int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	int (*real)(const char *, const char *, const struct addrinfo *,
	    struct addrinfo **);

	if (node && strncmp(node, "fake-", 5) == 0)
		return fk_answer(node, res);
	*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
	return real(node, service, hints, res);
}

void
freeaddrinfo(struct addrinfo *res)
{
	void (*real)(struct addrinfo *);
	struct addrinfo *next;

	if (res && res->ai_canonname == fk_tag) {
		for (; res; res = next) {
			next = res->ai_next;
			free(res);
		}
		return;
	}
	*(void **)&real = dlsym(RTLD_NEXT, "freeaddrinfo");
	real(res);
}

/* 127.0.0.2 has a name, 127.0.0.3 and 10/8 none; others: the C
 * library. */
int
getnameinfo(const struct sockaddr *sa, socklen_t len, char *host,
    socklen_t hlen, char *serv, socklen_t slen, int flags)
{
	int (*real)(const struct sockaddr *, socklen_t, char *, socklen_t,
	    char *, socklen_t, int);
	const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

	if (sa->sa_family == AF_INET && !(flags & NI_NUMERICHOST)) {
		pthread_mutex_lock(&fk_mu);
		fk_calls++;
		pthread_mutex_unlock(&fk_mu);
		if (in->sin_addr.s_addr == htonl(0x7f000002)) {
			snprintf(host, hlen, "fake-two.example");
			return 0;
		}
		if (in->sin_addr.s_addr == htonl(0x7f000003) ||
		    (ntohl(in->sin_addr.s_addr) >> 24) == 10)
			return EAI_NONAME;
	}
	*(void **)&real = dlsym(RTLD_NEXT, "getnameinfo");
	return real(sa, len, host, hlen, serv, slen, flags);
}

/* ---- helpers ---- */

static double clk;

static double
test_clock(void *arg)
{
	(void)arg;
	return clk;
}

struct got {
	int calls, err, n;
	struct resolve_sa sa[RESOLVE_ADDRS];
	char host[NI_MAXHOST];
	int resolved;
};

static void
fwd_cb(void *arg, const struct resolve_res *res)
{
	struct got *g = arg;

	g->calls++;
	g->err = res->err;
	g->n = (int)res->n;
	if (res->n)
		memcpy(g->sa, res->sa, res->n * sizeof *res->sa);
}

static void
rev_cb(void *arg, const char *host, int resolved)
{
	struct got *g = arg;

	g->calls++;
	snprintf(g->host, sizeof g->host, "%s", host);
	g->resolved = resolved;
}

static struct ev_loop *loop;

/* Run the loop until *flag is set, at most secs seconds: 1 if it was. */
static int
run_until(const int *flag, double secs)
{
	double end = ev_time() + secs;

	while (!*flag && ev_time() < end)
		ev_run(loop, EVRUN_ONCE | EVRUN_NOWAIT), usleep(1000);
	return *flag != 0;
}

static struct resolve *
mk(double expire)
{
	struct resolve_conf c;
	struct resolve *r;

	resolve_conf_default(&c);
	c.expire = expire;
	c.clock = test_clock;
	r = resolve_new(loop, &c);
	assert_non_null(r);
	return r;
}

static int
port_of(const struct resolve_sa *sa)
{
	return ntohs(((const struct sockaddr_in *)&sa->ss)->sin_port);
}

static int
setup(void **state)
{
	(void)state;
	loop = ev_default_loop(0);
	clk = 1000;
	fk_hold = 0;
	fk_set("10.0.0.1,1 10.0.0.2,2 10.0.0.3,3");
	return 0;
}

/* ---- tests ---- */

static void
test_numeric(void **state)
{
	struct resolve *r = mk(-1);
	struct got g = { 0 };
	struct resolve_req *q;
	struct sockaddr_in *in;

	(void)state;
	q = resolve_forward(r, "127.0.0.1", "24224", fwd_cb, &g);
	assert_non_null(q);
	assert_int_equal(g.calls, 0);	/* never from inside the call */
	assert_true(run_until(&g.calls, 10));
	assert_int_equal(g.err, 0);
	assert_int_equal(g.n, 1);
	in = (struct sockaddr_in *)&g.sa[0].ss;
	assert_int_equal(in->sin_family, AF_INET);
	assert_int_equal(ntohs(in->sin_port), 24224);
	assert_int_equal(ntohl(in->sin_addr.s_addr), 0x7f000001);
	resolve_free(r);
}

static void
test_localhost(void **state)
{
	struct resolve *r = mk(-1);
	struct got g = { 0 };
	struct resolve_res res;

	(void)state;
	assert_non_null(resolve_forward(r, "localhost", "1", fwd_cb, &g));
	assert_true(run_until(&g.calls, 10));
	assert_int_equal(g.err, 0);
	assert_true(g.n >= 1);
	assert_int_equal(resolve_cached(r, "localhost", "1", &res), 1);
	assert_int_equal((int)res.n, g.n);
	resolve_free(r);
}

/* nil: forever (until forgotten); N: N seconds on the cache's clock; 0:
 * every time. */
static void
test_expiry(void **state)
{
	struct resolve *r = mk(10);
	struct resolve_res res;
	struct got g = { 0 };
	int n0 = fk_get(NULL);

	(void)state;
	assert_int_equal(resolve_cached(r, "fake-a", "1", &res), 0);
	assert_non_null(resolve_forward(r, "fake-a", "1", fwd_cb, &g));
	assert_true(run_until(&g.calls, 10));
	assert_int_equal(g.n, 3);
	assert_int_equal(fk_get(NULL), n0 + 1);
	clk += 9.9;
	assert_int_equal(resolve_cached(r, "fake-a", "1", &res), 1);
	assert_int_equal((int)res.n, 3);
	assert_int_equal(port_of(&res.sa[1]), 2);
	clk += 0.1;		/* now - resolved >= expire: stale */
	assert_int_equal(resolve_cached(r, "fake-a", "1", &res), 0);
	fk_set("10.0.0.9,9");
	g.calls = 0;
	assert_non_null(resolve_forward(r, "fake-a", "1", fwd_cb, &g));
	assert_true(run_until(&g.calls, 10));
	assert_int_equal(fk_get(NULL), n0 + 2);
	assert_int_equal(resolve_cached(r, "fake-a", "1", &res), 1);
	assert_int_equal((int)res.n, 1);
	assert_int_equal(port_of(&res.sa[0]), 9);
	resolve_free(r);

	r = mk(-1);
	g.calls = 0;
	assert_non_null(resolve_forward(r, "fake-a", "1", fwd_cb, &g));
	assert_true(run_until(&g.calls, 10));
	clk += 1e9;
	assert_int_equal(resolve_cached(r, "fake-a", "1", &res), 1);
	resolve_forget(r, "fake-a", "1");
	assert_int_equal(resolve_cached(r, "fake-a", "1", &res), 0);
	resolve_free(r);

	r = mk(0);
	g.calls = 0;
	assert_non_null(resolve_forward(r, "fake-a", "1", fwd_cb, &g));
	assert_true(run_until(&g.calls, 10));
	assert_int_equal(resolve_cached(r, "fake-a", "1", &res), 0);
	resolve_free(r);
}

/* A failure reaches the caller and is not cached. */
static void
test_failure(void **state)
{
	struct resolve *r = mk(-1);
	struct resolve_res res;
	struct got g = { 0 };

	(void)state;
	assert_non_null(resolve_forward(r, "fake-none", "1", fwd_cb, &g));
	assert_true(run_until(&g.calls, 10));
	assert_int_equal(g.err, EAI_NONAME);
	assert_int_equal(g.n, 0);
	assert_int_equal(resolve_cached(r, "fake-none", "1", &res), 0);
	resolve_free(r);
}

/* Callers of one name share one lookup; the pending bound counts
 * lookups; past it, EAGAIN. */
static void
test_coalesce_and_bound(void **state)
{
	struct resolve_conf c;
	struct resolve *r;
	struct got g1 = { 0 }, g2 = { 0 }, g3 = { 0 };
	struct resolve_stats st;
	int n0 = fk_get(NULL), inside;

	(void)state;
	resolve_conf_default(&c);
	c.max_pending = 2;
	c.threads = 2;
	assert_non_null(r = resolve_new(loop, &c));
	fk_hold = 1;
	assert_non_null(resolve_forward(r, "fake-hang1", "1", fwd_cb, &g1));
	assert_non_null(resolve_forward(r, "fake-hang1", "1", fwd_cb, &g2));
	assert_non_null(resolve_forward(r, "fake-hang2", "1", fwd_cb, &g3));
	errno = 0;
	assert_null(resolve_forward(r, "fake-hang3", "1", fwd_cb, &g3));
	assert_int_equal(errno, EAGAIN);
	resolve_get_stats(r, &st);
	assert_int_equal((int)st.pending, 2);
	assert_int_equal((int)st.lookups, 2);
	assert_int_equal((int)st.refused, 1);
	while (fk_get(&inside), inside < 2)
		usleep(1000);
	fk_release();
	assert_true(run_until(&g2.calls, 10));
	assert_true(run_until(&g3.calls, 10));
	assert_int_equal(g1.calls, 1);
	assert_int_equal(g1.n, 3);
	assert_int_equal(fk_get(NULL), n0 + 2);
	resolve_get_stats(r, &st);
	assert_int_equal((int)st.pending, 0);
	assert_true(st.threads >= 1 && st.threads <= 2);
	resolve_free(r);
}

/* A cancelled request is never called back; its lookup still fills the
 * cache. */
static void
test_cancel(void **state)
{
	struct resolve *r = mk(-1);
	struct got g = { 0 }, h = { 0 };
	struct resolve_req *q;
	struct resolve_stats st;
	struct resolve_res res;
	int inside;

	(void)state;
	fk_hold = 1;
	assert_non_null(q = resolve_forward(r, "fake-hang", "1", fwd_cb, &g));
	assert_non_null(resolve_forward(r, "fake-hang", "1", fwd_cb, &h));
	while (fk_get(&inside), inside < 1)
		usleep(1000);
	resolve_cancel(q);
	fk_release();
	assert_true(run_until(&h.calls, 10));
	do {
		ev_run(loop, EVRUN_NOWAIT);
		resolve_get_stats(r, &st);
	} while (st.pending > 0);
	assert_int_equal(g.calls, 0);
	assert_int_equal(resolve_cached(r, "fake-hang", "1", &res), 1);
	resolve_free(r);
}

/* A caller waits at most the timeout; the late answer fills the cache. */
static void
test_timeout(void **state)
{
	struct resolve_conf c;
	struct resolve *r;
	struct resolve_res res;
	struct resolve_stats st;
	struct got g = { 0 };
	double t0;

	(void)state;
	resolve_conf_default(&c);
	c.timeout = 0.1;
	assert_non_null(r = resolve_new(loop, &c));
	fk_hold = 1;
	ev_now_update(loop);
	t0 = ev_time();
	assert_non_null(resolve_forward(r, "fake-hang", "1", fwd_cb, &g));
	assert_true(run_until(&g.calls, 10));
	assert_true(ev_time() - t0 >= 0.09);
	assert_int_equal(g.err, EAI_AGAIN);
	assert_int_equal(resolve_cached(r, "fake-hang", "1", &res), 0);
	fk_release();
	do {
		ev_run(loop, EVRUN_NOWAIT);
		resolve_get_stats(r, &st);
	} while (st.pending > 0);
	assert_int_equal(g.calls, 1);
	assert_int_equal(resolve_cached(r, "fake-hang", "1", &res), 1);
	assert_int_equal((int)st.timeouts, 1);
	resolve_free(r);
}

/* A name, none (the numeric address), the cache, the ttl. */
static void
test_reverse(void **state)
{
	struct resolve *r = mk(-1);
	struct sockaddr_in in;
	struct got g = { 0 };
	char host[NI_MAXHOST];
	int n0;

	(void)state;
	memset(&in, 0, sizeof in);
	in.sin_family = AF_INET;
	in.sin_port = htons(5555);
	in.sin_addr.s_addr = htonl(0x7f000002);
	assert_int_equal(resolve_reverse_cached(r, (struct sockaddr *)&in,
	    sizeof in, host, sizeof host), 0);
	assert_non_null(resolve_reverse(r, (struct sockaddr *)&in, sizeof in,
	    rev_cb, &g));
	assert_true(run_until(&g.calls, 10));
	assert_string_equal(g.host, "fake-two.example");
	assert_int_equal(g.resolved, 1);
	in.sin_port = htons(6666);	/* another port: the same address */
	n0 = fk_get(NULL);
	assert_int_equal(resolve_reverse_cached(r, (struct sockaddr *)&in,
	    sizeof in, host, sizeof host), 1);
	assert_string_equal(host, "fake-two.example");

	in.sin_addr.s_addr = htonl(0x7f000003);
	g.calls = 0;
	assert_non_null(resolve_reverse(r, (struct sockaddr *)&in, sizeof in,
	    rev_cb, &g));
	assert_true(run_until(&g.calls, 10));
	assert_string_equal(g.host, "127.0.0.3");
	assert_int_equal(g.resolved, 0);
	assert_int_equal(resolve_reverse_cached(r, (struct sockaddr *)&in,
	    sizeof in, host, sizeof host), 1);
	assert_string_equal(host, "127.0.0.3");
	assert_int_equal(fk_get(NULL), n0 + 1);
	clk += 300;			/* rev_ttl */
	assert_int_equal(resolve_reverse_cached(r, (struct sockaddr *)&in,
	    sizeof in, host, sizeof host), 0);
	errno = 0;
	in.sin_family = AF_UNIX;
	assert_null(resolve_reverse(r, (struct sockaddr *)&in, sizeof in,
	    rev_cb, &g));
	assert_int_equal(errno, EAFNOSUPPORT);
	resolve_free(r);
}

/* The reverse cache is bounded: the least recently used goes. */
static void
test_reverse_bound(void **state)
{
	struct resolve_conf c;
	struct resolve *r;
	struct sockaddr_in in;
	struct got g = { 0 };
	char host[NI_MAXHOST];
	int i;

	(void)state;
	resolve_conf_default(&c);
	c.rev_max = 4;
	assert_non_null(r = resolve_new(loop, &c));
	memset(&in, 0, sizeof in);
	in.sin_family = AF_INET;
	for (i = 0; i < 6; i++) {
		in.sin_addr.s_addr = htonl(0x0a000001 + (uint32_t)i);
		g.calls = 0;
		assert_non_null(resolve_reverse(r, (struct sockaddr *)&in,
		    sizeof in, rev_cb, &g));
		assert_true(run_until(&g.calls, 10));
	}
	for (i = 0; i < 6; i++) {
		in.sin_addr.s_addr = htonl(0x0a000001 + (uint32_t)i);
		assert_int_equal(resolve_reverse_cached(r,
		    (struct sockaddr *)&in, sizeof in, host, sizeof host),
		    i >= 2);
	}
	resolve_free(r);
}

/* resolve_free with lookups queued, running and stuck: it returns within
 * RESOLVE_EXIT_WAIT and a margin, makes no callback, and the stuck
 * worker frees what it holds once its call returns. */
static void
test_shutdown(void **state)
{
	struct resolve_conf c;
	struct resolve *r;
	struct got g = { 0 };
	double t0;
	int inside, n0 = fk_get(NULL);

	(void)state;
	resolve_conf_default(&c);
	c.threads = 1;
	assert_non_null(r = resolve_new(loop, &c));
	fk_hold = 1;
	assert_non_null(resolve_forward(r, "fake-hang1", "1", fwd_cb, &g));
	assert_non_null(resolve_forward(r, "fake-hang2", "1", fwd_cb, &g));
	assert_non_null(resolve_forward(r, "fake-b", "1", fwd_cb, &g));
	while (fk_get(&inside), inside < 1)
		usleep(1000);
	t0 = ev_time();
	resolve_free(r);
	assert_true(ev_time() - t0 >= RESOLVE_EXIT_WAIT * 0.9);
	assert_true(ev_time() - t0 < RESOLVE_EXIT_WAIT + 5);
	fk_release();
	/* the detached worker returns and goes; the queued two never ran */
	while (fk_get(&inside) < n0 + 1 || inside > 0)
		usleep(1000);
	usleep(100 * 1000);
	ev_run(loop, EVRUN_NOWAIT);
	assert_int_equal(g.calls, 0);
	assert_int_equal(fk_get(NULL), n0 + 1);

	/* idle workers and answers not yet read: joined and freed */
	assert_non_null(r = resolve_new(loop, &c));
	assert_non_null(resolve_forward(r, "fake-c", "1", fwd_cb, &g));
	while (fk_get(NULL) < n0 + 2)
		usleep(1000);
	t0 = ev_time();
	resolve_free(r);
	assert_true(ev_time() - t0 < RESOLVE_EXIT_WAIT);
	assert_int_equal(g.calls, 0);
}

/* ---- dial over a name ---- */

struct conn {
	struct dial_addr *a;
	ev_io w;
	int fd, done, rc;
};

static void
conn_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct conn *c = w->data;
	int ev = 0, rc;

	(void)revents;
	if ((rc = dial_sock_ops.finish(c->a, c->fd, &ev)) == 1) {
		ev_io_stop(l, w);
		ev_io_set(w, c->fd, ev);
		ev_io_start(l, w);
		return;
	}
	ev_io_stop(l, w);
	c->rc = rc;
	c->done = 1;
}

/* Open a connection through dial as lib/hop does: the port it reached
 * (0: it failed). */
static int
dial_once(struct dial_addr *a)
{
	struct conn c = { a, { 0 }, -1, 0, 0 };
	struct sockaddr_in peer;
	socklen_t len = sizeof peer;
	int rc, port = 0;

	if ((rc = dial_sock_ops.open(a, &c.fd)) == -1)
		return 0;
	if (rc == 1) {
		ev_io_init(&c.w, conn_cb, c.fd, EV_WRITE);
		c.w.data = &c;
		ev_io_start(loop, &c.w);
		assert_true(run_until(&c.done, 10));
		rc = c.rc;
	}
	if (rc == 0 && getpeername(c.fd, (struct sockaddr *)&peer, &len) == 0)
		port = ntohs(peer.sin_port);
	dial_sock_ops.close(a, c.fd);
	return port;
}

static int
listener(int *port)
{
	struct sockaddr_in in;
	socklen_t len = sizeof in;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&in, 0, sizeof in);
	in.sin_family = AF_INET;
	in.sin_addr.s_addr = htonl(0x7f000001);
	assert_int_equal(bind(fd, (struct sockaddr *)&in, sizeof in), 0);
	assert_int_equal(listen(fd, 16), 0);
	getsockname(fd, (struct sockaddr *)&in, &len);
	*port = ntohs(in.sin_port);
	return fd;
}

/* Round robin: each connection the next address.  Without it: the one
 * that connected, until it cannot be connected to. */
static void
test_dial_order(void **state)
{
	struct resolve *r = mk(-1);
	struct dial_addr a;
	char err[128], addrs[128];
	int lfd[3], port[3], i;

	(void)state;
	for (i = 0; i < 3; i++)
		lfd[i] = listener(&port[i]);
	snprintf(addrs, sizeof addrs, "127.0.0.1,%d 127.0.0.1,%d 127.0.0.1,%d",
	    port[0], port[1], port[2]);
	fk_set(addrs);
	assert_int_equal(dial_parse(&a, "fake-rr:1", err, sizeof err), 0);
	a.res = r;
	a.round_robin = 1;
	for (i = 0; i < 7; i++)
		assert_int_equal(dial_once(&a), port[i % 3]);

	assert_int_equal(dial_parse(&a, "fake-rr:1", err, sizeof err), 0);
	a.res = r;
	for (i = 0; i < 3; i++)
		assert_int_equal(dial_once(&a), port[0]);
	close(lfd[0]);		/* refused from now on */
	assert_int_equal(dial_once(&a), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(dial_once(&a), port[1]);
	resolve_free(r);
	close(lfd[1]);
	close(lfd[2]);
}

/* A connection closed while its name is being looked up: no callback
 * reaches it. */
static void
test_dial_close_pending(void **state)
{
	struct resolve *r = mk(-1);
	struct resolve_stats st;
	struct dial_addr a;
	char err[128];
	int fd;

	(void)state;
	fk_hold = 1;
	assert_int_equal(dial_parse(&a, "fake-hang:1", err, sizeof err), 0);
	a.res = r;
	assert_int_equal(dial_sock_ops.open(&a, &fd), 1);
	dial_sock_ops.close(&a, fd);
	fk_release();
	do {
		ev_run(loop, EVRUN_NOWAIT);
		resolve_get_stats(r, &st);
	} while (st.pending > 0);
	assert_int_equal(a.got, 0);
	resolve_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_numeric, setup),
		cmocka_unit_test_setup(test_localhost, setup),
		cmocka_unit_test_setup(test_expiry, setup),
		cmocka_unit_test_setup(test_failure, setup),
		cmocka_unit_test_setup(test_coalesce_and_bound, setup),
		cmocka_unit_test_setup(test_cancel, setup),
		cmocka_unit_test_setup(test_timeout, setup),
		cmocka_unit_test_setup(test_reverse, setup),
		cmocka_unit_test_setup(test_reverse_bound, setup),
		cmocka_unit_test_setup(test_shutdown, setup),
		cmocka_unit_test_setup(test_dial_order, setup),
		cmocka_unit_test_setup(test_dial_close_pending, setup),
	};

	log_init("test_resolve");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
