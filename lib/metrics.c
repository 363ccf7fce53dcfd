/* metrics: Prometheus text for --metrics-file.  See metrics.h. */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <ev.h>

#include "buf.h"
#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "report.h"
#include "spool.h"

struct metrics {
	char *path;
	char *name;		/* the name label */
	char *tool;
	char *labels;		/* name="...",tool="..." escaped */
	const char *fam;	/* the family being written */
	double start;
	struct buf b;
	int nomem;
};

/* Every write to the text goes through these: a failure (no memory)
 * is remembered, and such a text is never written. */
static void
add(struct buf *b, int *nomem, const char *s)
{
	*nomem |= buf_adds(b, s) == -1;
}

static void
addf(struct metrics *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
addf(struct metrics *m, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line)
		m->nomem = 1;	/* only names of ours go through here */
	else
		m->nomem |= buf_add(&m->b, line, (size_t)n) == -1;
}

/* A label value, or with help set a HELP text: \ and newline escaped,
 * and " in a label value (exposition format 0.0.4). */
static void
put_escaped(struct buf *b, int *nomem, const char *s, int help)
{
	char c[2] = { 0, 0 };

	for (; *s; s++) {
		if (*s == '\\')
			add(b, nomem, "\\\\");
		else if (*s == '\n')
			add(b, nomem, "\\n");
		else if (*s == '"' && !help)
			add(b, nomem, "\\\"");
		else {
			c[0] = *s;
			add(b, nomem, c);
		}
	}
}

/* The name label: the file's base name without ".prom" (a folder's,
 * for lf-spool: trailing slashes do not count). */
static char *
base_name(const char *path)
{
	const char *base, *end = path + strlen(path);
	size_t n;

	while (end > path + 1 && end[-1] == '/')
		end--;
	for (base = end; base > path && base[-1] != '/'; base--)
		;
	if (base == end)	/* "/" */
		base = path;
	n = (size_t)(end - base);
	if (n > 5 && strncmp(base + n - 5, ".prom", 5) == 0)
		n -= 5;
	return strndup(base, n);
}

static char *
base_labels(const char *name, const char *tool)
{
	struct buf b = BUF_INIT;
	int nomem = 0;

	add(&b, &nomem, "name=\"");
	put_escaped(&b, &nomem, name, 0);
	add(&b, &nomem, "\",tool=\"");
	put_escaped(&b, &nomem, tool, 0);
	add(&b, &nomem, "\"");
	if (nomem || buf_addc(&b, '\0') == -1) {
		buf_free(&b);
		return NULL;
	}
	return (char *)b.p;
}

struct metrics *
metrics_new(const char *path, const char *tool)
{
	struct metrics *m = calloc(1, sizeof *m);

	if (m == NULL)
		return NULL;
	if ((m->path = strdup(path)) == NULL ||
	    (m->tool = strdup(tool)) == NULL ||
	    (m->name = base_name(path)) == NULL ||
	    (m->labels = base_labels(m->name, tool)) == NULL) {
		metrics_free(m);
		return NULL;
	}
	m->start = ev_time();
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	free(m->path);
	free(m->name);
	free(m->tool);
	free(m->labels);
	buf_free(&m->b);
	free(m);
}

void
metrics_family(struct metrics *m, const char *fam, const char *type,
    const char *help)
{
	m->fam = fam;
	addf(m, "# HELP %s ", fam);
	put_escaped(&m->b, &m->nomem, help, 1);
	addf(m, "\n# TYPE %s %s\n", fam, type);
}

static void
sample_labels(struct metrics *m, va_list ap)
{
	const char *k, *v;

	addf(m, "%s{", m->fam);
	add(&m->b, &m->nomem, m->labels);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		addf(m, ",%s=\"", k);
		put_escaped(&m->b, &m->nomem, v ? v : "", 0);
		add(&m->b, &m->nomem, "\"");
	}
	add(&m->b, &m->nomem, "} ");
}

void
metrics_u64(struct metrics *m, uint64_t v, ...)
{
	va_list ap;

	va_start(ap, v);
	sample_labels(m, ap);
	va_end(ap);
	addf(m, "%llu\n", (unsigned long long)v);
}

void
metrics_num(struct metrics *m, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	sample_labels(m, ap);
	va_end(ap);
	if (isnan(v))
		add(&m->b, &m->nomem, "NaN\n");
	else if (isinf(v))
		add(&m->b, &m->nomem, v > 0 ? "+Inf\n" : "-Inf\n");
	else
		addf(m, "%.17g\n", v);
}

void
metrics_by_index(struct metrics *m, const char *label,
    const unsigned long long *v, int n, int from)
{
	char k[16];

	for (int i = from; i < n; i++)
		if (v[i]) {
			snprintf(k, sizeof k, "%d", i);
			metrics_u64(m, v[i], label, k, (char *)NULL);
		}
}

void
metrics_one_u64(struct metrics *m, const char *fam, const char *type,
    const char *help, uint64_t v)
{
	metrics_family(m, fam, type, help);
	metrics_u64(m, v, (char *)NULL);
}

void
metrics_one_num(struct metrics *m, const char *fam, const char *type,
    const char *help, double v)
{
	metrics_family(m, fam, type, help);
	metrics_num(m, v, (char *)NULL);
}

void
metrics_reset(struct metrics *m)
{
	buf_reset(&m->b);
	m->nomem = 0;
}

const char *
metrics_text(const struct metrics *m, size_t *len)
{
	if (m->nomem)
		return NULL;
	*len = m->b.len;
	return m->b.len ? (const char *)m->b.p : "";
}

void
metrics_begin(struct metrics *m)
{
	metrics_reset(m);
	metrics_family(m, "lf_build_info", "gauge",
	    "The version of the lf tool writing this file.");
	metrics_num(m, 1, "version", LF_VERSION, (char *)NULL);
	metrics_one_num(m, "lf_start_time_seconds", "gauge",
	    "When the process started, in unix seconds.", floor(m->start));
	metrics_one_num(m, "lf_cpu_seconds_total", "counter",
	    "User and system CPU time of the process.", report_cpu_seconds());
	metrics_one_u64(m, "lf_max_rss_bytes", "gauge",
	    "Peak resident memory of the process.", report_peak_rss());
}

int
metrics_commit(struct metrics *m)
{
	if (m->nomem)
		errno = ENOMEM;
	if (m->nomem ||
	    report_replace(m->path, m->b.p, m->b.len, 1) == -1) {
		LOG_WARN_LIMITED("%s: cannot write the metrics: %s", m->path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- what inputs and outputs share ---- */

static void
put_input(struct metrics *m, const struct metrics_io *io)
{
	metrics_one_u64(m, "lf_input_events_total", "counter",
	    "Events taken in (acknowledged to the sender, or read).",
	    io->in_events);
	metrics_one_u64(m, "lf_input_bytes_total", "counter",
	    "Bytes of the events taken in.", io->in_bytes);
	metrics_one_u64(m, "lf_input_errors_total", "counter",
	    "Messages or lines refused or not parsed.", io->in_errors);
	metrics_one_u64(m, "lf_input_dropped_events_total", "counter",
	    "Events dropped by a rule (no pattern matched, over a limit).",
	    io->in_dropped);
	metrics_one_u64(m, "fluentbit_input_records_total", "counter",
	    "Number of input records.", io->in_events);
	metrics_one_u64(m, "fluentbit_input_bytes_total", "counter",
	    "Number of input bytes.", io->in_bytes);
}

static void
put_output(struct metrics *m, const struct metrics_io *io)
{
	metrics_one_u64(m, "lf_output_events_total", "counter",
	    "Events delivered (acknowledged or committed).", io->out_events);
	metrics_one_u64(m, "lf_output_bytes_total", "counter",
	    "Bytes of the events delivered.", io->out_bytes);
	metrics_one_u64(m, "lf_output_chunks_total", "counter",
	    "Chunks delivered.", io->out_chunks);
	metrics_one_u64(m, "lf_output_errors_total", "counter",
	    "Delivery attempts that failed.", io->out_errors);
	metrics_one_u64(m, "lf_output_retries_total", "counter",
	    "Retries scheduled.", io->out_retries);
	metrics_one_u64(m, "lf_output_dead_chunks_total", "counter",
	    "Chunks this process moved to dead/.", io->dead_chunks);
	metrics_one_u64(m, "lf_output_dead_events_total", "counter",
	    "Events of the chunks moved to dead/.", io->dead_events);
	/* Fluent Bit's names, with its rules (outputs.md 3.3) */
	metrics_one_u64(m, "fluentbit_output_proc_records_total", "counter",
	    "Number of processed output records.", io->out_events);
	metrics_one_u64(m, "fluentbit_output_proc_bytes_total", "counter",
	    "Number of processed output bytes.", io->out_bytes);
	metrics_one_u64(m, "fluentbit_output_errors_total", "counter",
	    "Number of output errors.", io->out_errors);
	metrics_one_u64(m, "fluentbit_output_retries_total", "counter",
	    "Number of output retries.", io->out_retries);
	metrics_one_u64(m, "fluentbit_output_retries_failed_total", "counter",
	    "Number of abandoned batches because the maximum number of "
	    "re-tries was reached.", io->dead_chunks);
	metrics_one_u64(m, "fluentbit_output_dropped_records_total", "counter",
	    "Number of dropped records.", io->dead_events);
}

void
metrics_put_io(struct metrics *m, const struct metrics_io *io)
{
	if (io->input)
		put_input(m, io);
	if (io->output)
		put_output(m, io);
	metrics_one_num(m, "lf_last_event_time_seconds", "gauge",
	    "When the last event came in or was delivered, unix seconds.",
	    io->last_event);
}

/* ---- spools ---- */

/* Count a folder's chunks and their file sizes; for new/ also the oldest
 * seal time.  Quiet: this runs every few seconds, and lf-spool check is
 * the place that names odd files. */
static int
count_folder(int dirfd, uint64_t *chunks, uint64_t *bytes, uint64_t *oldest)
{
	struct spool_list l;
	struct stat st;
	uint64_t us;

	if (spool_list(dirfd, &l) == -1)
		return -1;
	for (size_t i = 0; i < l.n; i++) {
		if (fstatat(dirfd, l.names[i], &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;	/* gone meanwhile (delivered) */
		++*chunks;
		*bytes += (uint64_t)st.st_size;
		if (oldest && spool_name_seal_us(l.names[i], &us) == 0 &&
		    (*oldest == 0 || us < *oldest))
			*oldest = us;
	}
	spool_list_free(&l);
	return 0;
}

int
metrics_spool_read(const struct spool *s, struct metrics_spool *ms,
    char *err, size_t errlen)
{
	uint64_t oldest = 0, dead_bytes = 0;
	const char *folder = "new";

	memset(ms, 0, sizeof *ms);
	ms->path = s->path;
	if (count_folder(s->new, &ms->ready_chunks, &ms->ready_bytes,
	    &oldest) == -1 ||
	    (folder = "tmp", count_folder(s->tmp, &ms->staged_chunks,
	    &ms->staged_bytes, NULL)) == -1 ||
	    (folder = "dead", count_folder(s->dead, &ms->dead_chunks,
	    &dead_bytes, NULL)) == -1) {
		snprintf(err, errlen, "%s/%s: %s", s->path, folder,
		    strerror(errno));
		return -1;
	}
	if (oldest) {
		ms->oldest_age = ev_time() - oldest / 1e6;
		if (ms->oldest_age < 0)
			ms->oldest_age = 0;
	}
	return 0;
}

/* A spool's sample, under its own name label if it has one. */
static void
spool_sample(struct metrics *m, const struct metrics_spool *ms, double v)
{
	char *labels = m->labels, *own = NULL, *name = NULL;

	if (ms->name != NULL) {
		if ((name = base_name(ms->name)) == NULL ||
		    (own = base_labels(name, m->tool)) == NULL) {
			free(name);
			m->nomem = 1;
			return;
		}
		free(name);
		m->labels = own;
	}
	metrics_num(m, v, "spool", ms->path, (char *)NULL);
	m->labels = labels;
	free(own);
}

static void
spool_family(struct metrics *m, const struct metrics_spool *ms, int n,
    const char *fam, const char *help, size_t off)
{
	metrics_family(m, fam, "gauge", help);
	for (int i = 0; i < n; i++)
		spool_sample(m, &ms[i],
		    (double)*(const uint64_t *)((const char *)&ms[i] + off));
}

/* fluent-plugin-prometheus's output monitor, for dashboards made for it:
 * plugin_id is the name label, type Fluentd's plugin type. */
static void
put_fluentd(struct metrics *m, const struct metrics_spool *ms,
    const struct metrics_io *io)
{
	static const char *const help[] = {
		"Chunks queued for the output.",
		"Bytes of the chunks queued and staged.",
		"Errors of the output (Fluentd's num_errors).",
		"Events the output was given.",
	};
	const char *fam[] = {
		"fluentd_output_status_buffer_queue_length",
		"fluentd_output_status_buffer_total_bytes",
		"fluentd_output_status_retry_count",
		"fluentd_output_status_emit_records",
	};
	uint64_t v[] = { ms->ready_chunks, ms->ready_bytes + ms->staged_bytes,
	    io->out_errors, io->out_events };

	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		metrics_family(m, fam[i], "gauge", help[i]);
		metrics_u64(m, v[i], "plugin_id", m->name, "type", io->type,
		    (char *)NULL);
	}
}

void
metrics_put_spools(struct metrics *m, const struct metrics_spool *ms, int n,
    const struct metrics_io *io)
{
#define F(fam, help, field) spool_family(m, ms, n, fam, help, \
	offsetof(struct metrics_spool, field))
	if (n == 0)
		return;
	F("lf_spool_queue_chunks", "Chunks ready to deliver (new/).",
	    ready_chunks);
	F("lf_spool_queue_bytes", "Bytes of the chunks ready to deliver.",
	    ready_bytes);
	F("lf_spool_staged_chunks", "Chunks still being filled (tmp/).",
	    staged_chunks);
	F("lf_spool_staged_bytes", "Bytes of the chunks being filled.",
	    staged_bytes);
	F("lf_spool_dead_chunks", "Chunks set aside in dead/.", dead_chunks);
#undef F
	metrics_family(m, "lf_spool_oldest_chunk_age_seconds", "gauge",
	    "Age of the oldest chunk ready to deliver, 0 if none.");
	for (int i = 0; i < n; i++)
		spool_sample(m, &ms[i], ms[i].oldest_age);
	if (io != NULL && io->output)
		put_fluentd(m, &ms[0], io);
}

/* ---- the periodic rewrite ---- */

static void
writer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct metrics_writer *mw = w->data;

	(void)loop, (void)revents;
	metrics_writer_write(mw);
}

int
metrics_writer_start(struct metrics_writer *mw, struct ev_loop *loop,
    const char *path, const char *tool, double interval,
    metrics_fill_fn fill, void *ctx)
{
	memset(mw, 0, sizeof *mw);
	if (path == NULL)
		return 0;
	if ((mw->m = metrics_new(path, tool)) == NULL)
		return -1;
	mw->loop = loop;
	mw->fill = fill;
	mw->ctx = ctx;
	ev_timer_init(&mw->w, writer_cb, 0., interval);
	mw->w.data = mw;
	ev_timer_start(loop, &mw->w);
	ev_unref(loop);		/* a report: the loop may end without it */
	return 0;
}

void
metrics_writer_write(struct metrics_writer *mw)
{
	if (mw->m == NULL)
		return;
	metrics_begin(mw->m);
	mw->fill(mw->ctx, mw->m);
	metrics_commit(mw->m);
}

void
metrics_writer_stop(struct metrics_writer *mw)
{
	if (mw->m == NULL)
		return;
	ev_ref(mw->loop);
	ev_timer_stop(mw->loop, &mw->w);
	metrics_free(mw->m);
	mw->m = NULL;
}

void
metrics_writer_finish(struct metrics_writer *mw)
{
	metrics_writer_write(mw);
	metrics_writer_stop(mw);
}

double
metrics_interval_opt(const char *arg)
{
	double v = conf_opt_duration("metrics-interval", arg);

	if (!(v > 0))
		log_fatal(EX_USAGE, "--metrics-interval: more than 0");
	return v;
}
