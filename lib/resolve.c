#include <sys/queue.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bsd/string.h>

#include "log.h"
#include "resolve.h"

/* The loop thread owns everything here but struct core, which it shares
 * with the workers under core.mu; a job is the worker's from the moment
 * it leaves the queue until it is on the done list. */

enum { FWD, REV };

struct entry;

struct job {
	TAILQ_ENTRY(job) q;
	struct entry *e;		/* loop thread only */
	int kind;
	char host[256], port[32];	/* FWD: the question */
	struct resolve_sa in;		/* REV: the question */
	int err, syserr;		/* the answer, by the worker */
	struct resolve_sa *sa;
	size_t n;
	char name[NI_MAXHOST];
};
TAILQ_HEAD(jobq, job);

struct resolve_req {
	TAILQ_ENTRY(resolve_req) w;
	struct resolve *r;
	struct entry *e;
	struct job *job;		/* the lookup it waits for */
	ev_timer tm;
	resolve_fwd_cb *fcb;
	resolve_rev_cb *rcb;
	void *arg;
};

struct entry {
	TAILQ_ENTRY(entry) lru;
	int kind;
	char host[256], port[32];	/* FWD key */
	struct resolve_sa key;		/* REV key, port 0 */
	double at;			/* when answered; -1: no answer */
	struct resolve_sa *sa;		/* FWD answer */
	size_t n;
	char *name;			/* REV answer */
	int named;
	struct job *job;		/* a lookup under way, or NULL */
	TAILQ_HEAD(, resolve_req) waiters;
	int pin;			/* delivering: not to be freed */
	char logged[128];		/* the failure last logged */
};
TAILQ_HEAD(entryq, entry);

struct worker {
	pthread_t t;
	int started, busy;
	struct core *c;
};

struct core {
	pthread_mutex_t mu;
	pthread_cond_t work, idle;
	struct jobq queue, done;
	size_t nqueued;
	int stop, refs, nthreads, nidle;
	struct worker w[RESOLVE_THREADS];
	struct ev_loop *loop;
	ev_async *as;
};

struct resolve {
	struct ev_loop *loop;
	struct resolve_conf conf;
	struct core *c;
	ev_async as;
	struct entryq fwd, rev;
	size_t nfwd, nrev;
	size_t pending;			/* jobs queued or running */
	struct resolve_stats st;
};

void
resolve_conf_default(struct resolve_conf *c)
{
	memset(c, 0, sizeof *c);
	c->threads = 2;
	c->max_pending = 64;
	c->timeout = 10;
	c->expire = -1;
	c->fwd_max = 256;
	c->rev_max = 4096;
	c->rev_ttl = 300;
}

static double
now(const struct resolve *r)
{
	if (r->conf.clock != NULL)
		return r->conf.clock(r->conf.clock_arg);
	return ev_now(r->loop);
}

/* ---- the workers ---- */

static void
job_free(struct job *j)
{
	free(j->sa);
	free(j);
}

static void
run_fwd(struct job *j)
{
	struct addrinfo hints, *res, *ai;
	size_t n = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	if ((j->err = getaddrinfo(j->host, j->port, &hints, &res)) != 0) {
		j->syserr = errno;
		return;
	}
	for (ai = res; ai && n < RESOLVE_ADDRS; ai = ai->ai_next)
		if (ai->ai_addrlen <= sizeof j->sa->ss)
			n++;
	if (n == 0)
		j->err = EAI_NONAME;
	else if ((j->sa = calloc(n, sizeof *j->sa)) == NULL)
		j->err = EAI_MEMORY;
	for (ai = res; ai && j->sa && j->n < n; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof j->sa->ss)
			continue;
		memcpy(&j->sa[j->n].ss, ai->ai_addr, ai->ai_addrlen);
		j->sa[j->n++].len = ai->ai_addrlen;
	}
	freeaddrinfo(res);
}

/* A name only if the address has one; else the numeric form. */
static void
run_rev(struct job *j)
{
	const struct sockaddr *sa = (const struct sockaddr *)&j->in.ss;

	j->err = getnameinfo(sa, j->in.len, j->name, sizeof j->name, NULL, 0,
	    NI_NAMEREQD);
	if (j->err != 0 && getnameinfo(sa, j->in.len, j->name,
	    sizeof j->name, NULL, 0, NI_NUMERICHOST) != 0)
		strlcpy(j->name, "?", sizeof j->name);
}

static void
core_free(struct core *c)
{
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->idle);
	free(c);
}

/* Drop a reference to c under its lock; the last one frees it. */
static void
core_unref(struct core *c)
{
	int last = --c->refs == 0;

	pthread_mutex_unlock(&c->mu);
	if (last)
		core_free(c);
}

static void *
worker_main(void *p)
{
	struct worker *w = p;
	struct core *c = w->c;
	struct job *j;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->stop && TAILQ_EMPTY(&c->queue)) {
			c->nidle++;
			pthread_cond_wait(&c->work, &c->mu);
			c->nidle--;
		}
		if (c->stop)
			break;
		j = TAILQ_FIRST(&c->queue);
		TAILQ_REMOVE(&c->queue, j, q);
		c->nqueued--;
		w->busy = 1;
		pthread_mutex_unlock(&c->mu);
		if (j->kind == FWD)
			run_fwd(j);
		else
			run_rev(j);
		pthread_mutex_lock(&c->mu);
		w->busy = 0;
		if (c->stop) {
			/* the loop is gone: nobody will read the answer */
			job_free(j);
			pthread_cond_broadcast(&c->idle);
			break;
		}
		TAILQ_INSERT_TAIL(&c->done, j, q);
		ev_async_send(c->loop, c->as);
	}
	core_unref(c);
	return NULL;
}

/* A worker, with every signal blocked: signals are the loop's.  Under
 * c->mu.  0 or -1. */
static int
spawn(struct core *c)
{
	struct worker *w = &c->w[c->nthreads];
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	w->c = c;
	rc = pthread_create(&w->t, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -1;
	w->started = 1;
	c->nthreads++;
	c->refs++;
	return 0;
}

/* Queue j, starting a worker if none is free: 0, or -1 when no worker
 * can run it. */
static int
submit(struct resolve *r, struct job *j)
{
	struct core *c = r->c;
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	TAILQ_INSERT_TAIL(&c->queue, j, q);
	c->nqueued++;
	if (c->nqueued > (size_t)c->nidle && c->nthreads < r->conf.threads &&
	    spawn(c) == -1 && c->nthreads == 0) {
		TAILQ_REMOVE(&c->queue, j, q);
		c->nqueued--;
		rc = -1;
	}
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* ---- the caches (loop thread) ---- */

static void
entry_free(struct entry *e)
{
	free(e->sa);
	free(e->name);
	free(e);
}

static int
busy(const struct entry *e)
{
	return e->job != NULL || !TAILQ_EMPTY(&e->waiters) || e->pin > 0;
}

/* A new entry at the head of q, making room by dropping the least
 * recently used idle one.  NULL with errno. */
static struct entry *
entry_new(struct entryq *q, size_t *cnt, size_t max, int kind)
{
	struct entry *e;

	if (*cnt >= max) {
		TAILQ_FOREACH_REVERSE(e, q, entryq, lru)
			if (!busy(e))
				break;
		if (e == NULL) {
			errno = EAGAIN;
			return NULL;
		}
		TAILQ_REMOVE(q, e, lru);
		entry_free(e);
		(*cnt)--;
	}
	if ((e = calloc(1, sizeof *e)) == NULL)
		return NULL;
	e->kind = kind;
	e->at = -1;
	TAILQ_INIT(&e->waiters);
	TAILQ_INSERT_HEAD(q, e, lru);
	(*cnt)++;
	return e;
}

static void
touch(struct entryq *q, struct entry *e)
{
	TAILQ_REMOVE(q, e, lru);
	TAILQ_INSERT_HEAD(q, e, lru);
}

static struct entry *
fwd_find(struct resolve *r, const char *host, const char *port)
{
	struct entry *e;

	TAILQ_FOREACH(e, &r->fwd, lru)
		if (strcmp(e->host, host) == 0 && strcmp(e->port, port) == 0) {
			touch(&r->fwd, e);
			return e;
		}
	return NULL;
}

/* The reverse key: the address alone (the port zeroed). */
static int
rev_key(struct resolve_sa *k, const struct sockaddr *sa, socklen_t len)
{
	memset(k, 0, sizeof *k);
	if ((sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) ||
	    (sa->sa_family == AF_INET6 &&
	    len >= sizeof(struct sockaddr_in6))) {
		k->len = sa->sa_family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
		memcpy(&k->ss, sa, k->len);
		if (sa->sa_family == AF_INET)
			((struct sockaddr_in *)&k->ss)->sin_port = 0;
		else
			((struct sockaddr_in6 *)&k->ss)->sin6_port = 0;
		return 0;
	}
	errno = EAFNOSUPPORT;
	return -1;
}

static struct entry *
rev_find(struct resolve *r, const struct resolve_sa *k)
{
	struct entry *e;

	TAILQ_FOREACH(e, &r->rev, lru)
		if (e->key.len == k->len && memcmp(&e->key.ss, &k->ss,
		    k->len) == 0) {
			touch(&r->rev, e);
			return e;
		}
	return NULL;
}

static int
fresh(const struct resolve *r, const struct entry *e)
{
	double ttl = e->kind == FWD ? r->conf.expire : r->conf.rev_ttl;

	if (e->at < 0)
		return 0;
	return ttl < 0 || now(r) - e->at < ttl;
}

/* ---- answers (loop thread) ---- */

static void
why_of(char *why, size_t n, int err, int syserr)
{
	if (err == EAI_SYSTEM)
		snprintf(why, n, "%s", strerror(syserr));
	else
		snprintf(why, n, "%s", gai_strerror(err));
}

/* One line per name and reason, however often it is retried. */
static void
note_failure(struct entry *e, const char *why)
{
	if (strcmp(e->logged, why) == 0)
		return;
	log_warn("%s: cannot resolve: %s", e->host, why);
	strlcpy(e->logged, why, sizeof e->logged);
}

static void
note_success(struct entry *e)
{
	if (e->logged[0] == '\0')
		return;
	log_info("%s: resolves again", e->host);
	e->logged[0] = '\0';
}

static void
store_fwd(struct resolve *r, struct entry *e, struct job *j)
{
	char why[128];

	if (j->err != 0) {
		r->st.failures++;
		why_of(why, sizeof why, j->err, j->syserr);
		note_failure(e, why);
		free(e->sa);
		e->sa = NULL;
		e->n = 0;
		e->at = -1;
		return;
	}
	note_success(e);
	free(e->sa);
	e->sa = j->sa;
	e->n = j->n;
	j->sa = NULL;
	e->at = now(r);
}

static int
store_rev(struct resolve *r, struct entry *e, struct job *j)
{
	char *name;

	if ((name = strdup(j->name)) == NULL)
		return -1;
	if (j->err != 0)
		r->st.failures++;
	free(e->name);
	e->name = name;
	e->named = j->err == 0;
	e->at = now(r);
	return 0;
}

static void
req_done(struct resolve_req *q)
{
	TAILQ_REMOVE(&q->e->waiters, q, w);
	ev_timer_stop(q->r->loop, &q->tm);
}

/* Every caller that waited for j, in the order they asked.  The answer
 * is copied first: a callback may forget or refresh the entry. */
static void
deliver(struct entry *e, struct job *j)
{
	struct resolve_sa sa[RESOLVE_ADDRS];
	struct resolve_res res;
	struct resolve_req *q;
	char name[NI_MAXHOST];
	resolve_fwd_cb *fcb;
	resolve_rev_cb *rcb;
	void *arg;
	int named = e->named;

	memset(&res, 0, sizeof res);
	res.err = j->err;
	why_of(res.why, sizeof res.why, j->err, j->syserr);
	if (e->kind == FWD && j->err == 0) {
		res.n = e->n;
		memcpy(sa, e->sa, e->n * sizeof *sa);
		res.sa = sa;
	}
	strlcpy(name, e->kind == REV && e->name ? e->name : j->name,
	    sizeof name);
	e->pin++;
	while ((q = TAILQ_FIRST(&e->waiters)) != NULL && q->job == j) {
		req_done(q);
		fcb = q->fcb;
		rcb = q->rcb;
		arg = q->arg;
		free(q);
		if (fcb)
			fcb(arg, &res);
		else
			rcb(arg, name, named);
	}
	e->pin--;
}

static void
job_done(struct resolve *r, struct job *j)
{
	struct entry *e = j->e;

	r->pending--;
	e->job = NULL;
	if (e->kind == FWD)
		store_fwd(r, e, j);
	else if (store_rev(r, e, j) == -1)
		e->named = 0;
	deliver(e, j);
	job_free(j);
}

static void
async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct resolve *r = w->data;
	struct jobq done;
	struct job *j;

	(void)loop;
	(void)revents;
	TAILQ_INIT(&done);
	pthread_mutex_lock(&r->c->mu);
	TAILQ_CONCAT(&done, &r->c->done, q);
	pthread_mutex_unlock(&r->c->mu);
	while ((j = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, j, q);
		job_done(r, j);
	}
}

/* A caller waited timeout seconds: it hears so now; the lookup goes on
 * and its answer still fills the cache. */
static void
timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolve_req *q = w->data;
	struct resolve *r = q->r;
	struct entry *e = q->e;
	struct resolve_res res;
	char name[NI_MAXHOST];
	resolve_fwd_cb *fcb = q->fcb;
	resolve_rev_cb *rcb = q->rcb;
	void *arg = q->arg;

	(void)loop;
	(void)revents;
	r->st.timeouts++;
	req_done(q);
	free(q);
	if (fcb) {
		memset(&res, 0, sizeof res);
		res.err = EAI_AGAIN;
		snprintf(res.why, sizeof res.why, "no answer in %gs",
		    r->conf.timeout);
		note_failure(e, res.why);
		fcb(arg, &res);
		return;
	}
	if (getnameinfo((struct sockaddr *)&e->key.ss, e->key.len, name,
	    sizeof name, NULL, 0, NI_NUMERICHOST) != 0)
		strlcpy(name, "?", sizeof name);
	rcb(arg, name, 0);
}

/* ---- requests ---- */

/* Start a lookup for e: 0, or -1 with errno. */
static int
job_start(struct resolve *r, struct entry *e)
{
	struct job *j;

	if (r->pending >= r->conf.max_pending) {
		r->st.refused++;
		errno = EAGAIN;
		return -1;
	}
	if ((j = calloc(1, sizeof *j)) == NULL)
		return -1;
	j->kind = e->kind;
	j->e = e;
	memcpy(j->host, e->host, sizeof j->host);
	memcpy(j->port, e->port, sizeof j->port);
	j->in = e->key;
	if (submit(r, j) == -1) {
		free(j);
		errno = EAGAIN;
		return -1;
	}
	e->job = j;
	r->pending++;
	r->st.lookups++;
	return 0;
}

/* A caller waiting for e's lookup (started if none is under way). */
static struct resolve_req *
wait_for(struct resolve *r, struct entry *e, void *arg)
{
	struct resolve_req *q;

	if ((q = calloc(1, sizeof *q)) == NULL)
		return NULL;
	if (e->job == NULL && job_start(r, e) == -1) {
		free(q);
		return NULL;
	}
	q->r = r;
	q->e = e;
	q->job = e->job;
	q->arg = arg;
	TAILQ_INSERT_TAIL(&e->waiters, q, w);
	ev_timer_init(&q->tm, timeout_cb, r->conf.timeout, 0);
	q->tm.data = q;
	ev_timer_start(r->loop, &q->tm);
	return q;
}

int
resolve_cached(struct resolve *r, const char *host, const char *port,
    struct resolve_res *res)
{
	struct entry *e;

	if ((e = fwd_find(r, host, port)) == NULL || !fresh(r, e))
		return 0;
	memset(res, 0, sizeof *res);
	res->n = e->n;
	res->sa = e->sa;
	r->st.hits++;
	return 1;
}

struct resolve_req *
resolve_forward(struct resolve *r, const char *host, const char *port,
    resolve_fwd_cb *cb, void *arg)
{
	struct resolve_req *q;
	struct entry *e;

	if (strlen(host) >= sizeof e->host || strlen(port) >= sizeof e->port) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	if ((e = fwd_find(r, host, port)) == NULL) {
		if ((e = entry_new(&r->fwd, &r->nfwd, r->conf.fwd_max, FWD))
		    == NULL)
			return NULL;
		strlcpy(e->host, host, sizeof e->host);
		strlcpy(e->port, port, sizeof e->port);
	}
	if ((q = wait_for(r, e, arg)) != NULL)
		q->fcb = cb;
	return q;
}

void
resolve_forget(struct resolve *r, const char *host, const char *port)
{
	struct entry *e;

	if ((e = fwd_find(r, host, port)) == NULL)
		return;
	free(e->sa);
	e->sa = NULL;
	e->n = 0;
	e->at = -1;
}

int
resolve_reverse_cached(struct resolve *r, const struct sockaddr *sa,
    socklen_t len, char *host, size_t n)
{
	struct resolve_sa k;
	struct entry *e;

	if (rev_key(&k, sa, len) == -1 || (e = rev_find(r, &k)) == NULL ||
	    !fresh(r, e) || e->name == NULL)
		return 0;
	strlcpy(host, e->name, n);
	r->st.hits++;
	return 1;
}

struct resolve_req *
resolve_reverse(struct resolve *r, const struct sockaddr *sa, socklen_t len,
    resolve_rev_cb *cb, void *arg)
{
	struct resolve_req *q;
	struct resolve_sa k;
	struct entry *e;

	if (rev_key(&k, sa, len) == -1)
		return NULL;
	if ((e = rev_find(r, &k)) == NULL) {
		if ((e = entry_new(&r->rev, &r->nrev, r->conf.rev_max, REV))
		    == NULL)
			return NULL;
		e->key = k;
	}
	if ((q = wait_for(r, e, arg)) != NULL)
		q->rcb = cb;
	return q;
}

void
resolve_cancel(struct resolve_req *q)
{
	if (q == NULL)
		return;
	req_done(q);
	free(q);
}

void
resolve_get_stats(const struct resolve *r, struct resolve_stats *st)
{
	*st = r->st;
	st->pending = r->pending;
	pthread_mutex_lock(&r->c->mu);
	st->threads = r->c->nthreads;
	pthread_mutex_unlock(&r->c->mu);
}

/* ---- life ---- */

static struct core *
core_new(void)
{
	struct core *c;
	pthread_condattr_t ca;

	if ((c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->work, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->idle, &ca);
	pthread_condattr_destroy(&ca);
	TAILQ_INIT(&c->queue);
	TAILQ_INIT(&c->done);
	c->refs = 1;
	return c;
}

struct resolve *
resolve_new(struct ev_loop *loop, const struct resolve_conf *conf)
{
	struct resolve *r;

	if ((r = calloc(1, sizeof *r)) == NULL)
		return NULL;
	if ((r->c = core_new()) == NULL) {
		free(r);
		return NULL;
	}
	r->loop = loop;
	r->conf = *conf;
	if (r->conf.threads < 1)
		r->conf.threads = 1;
	if (r->conf.threads > RESOLVE_THREADS)
		r->conf.threads = RESOLVE_THREADS;
	if (r->conf.max_pending < 1)
		r->conf.max_pending = 1;
	if (!(r->conf.timeout > 0))
		r->conf.timeout = 10;
	TAILQ_INIT(&r->fwd);
	TAILQ_INIT(&r->rev);
	r->c->loop = loop;
	r->c->as = &r->as;
	ev_async_init(&r->as, async_cb);
	r->as.data = r;
	ev_async_start(loop, &r->as);
	/* the resolver alone must not keep the loop running */
	ev_unref(loop);
	return r;
}

static void
entries_free(struct resolve *r, struct entryq *q)
{
	struct resolve_req *rq;
	struct entry *e;

	while ((e = TAILQ_FIRST(q)) != NULL) {
		TAILQ_REMOVE(q, e, lru);
		while ((rq = TAILQ_FIRST(&e->waiters)) != NULL) {
			req_done(rq);
			free(rq);
		}
		entry_free(e);
	}
	(void)r;
}

/* Stop the workers: wait up to RESOLVE_EXIT_WAIT for those inside a
 * libc call, join every one that is out of it, detach the rest.  Under
 * c->mu on entry; unlocked on return. */
static void
workers_stop(struct core *c)
{
	struct timespec until;
	int i, stuck, detach[RESOLVE_THREADS];

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)RESOLVE_EXIT_WAIT;
	until.tv_nsec += (long)((RESOLVE_EXIT_WAIT - (time_t)RESOLVE_EXIT_WAIT)
	    * 1e9);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	for (;;) {
		for (i = stuck = 0; i < c->nthreads; i++)
			stuck += c->w[i].busy;
		if (stuck == 0 || pthread_cond_timedwait(&c->idle, &c->mu,
		    &until) == ETIMEDOUT)
			break;
	}
	for (i = 0; i < c->nthreads; i++)
		detach[i] = c->w[i].busy;
	pthread_mutex_unlock(&c->mu);
	for (i = 0; i < c->nthreads; i++) {
		if (detach[i])
			pthread_detach(c->w[i].t);
		else
			pthread_join(c->w[i].t, NULL);
	}
}

void
resolve_free(struct resolve *r)
{
	struct core *c;
	struct jobq drop;
	struct job *j;

	if (r == NULL)
		return;
	c = r->c;
	TAILQ_INIT(&drop);
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	TAILQ_CONCAT(&drop, &c->queue, q);
	TAILQ_CONCAT(&drop, &c->done, q);
	pthread_cond_broadcast(&c->work);
	workers_stop(c);
	while ((j = TAILQ_FIRST(&drop)) != NULL) {
		TAILQ_REMOVE(&drop, j, q);
		job_free(j);
	}
	entries_free(r, &r->fwd);
	entries_free(r, &r->rev);
	ev_ref(r->loop);
	ev_async_stop(r->loop, &r->as);
	pthread_mutex_lock(&c->mu);
	core_unref(c);
	free(r);
}
