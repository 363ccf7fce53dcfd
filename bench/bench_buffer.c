/* lf-buffer throughput through a Unix socket with acks.
 *
 * bench_buffer LF_BUFFER SPOOL [messages] [connections] [window]
 *
 * Starts lf-buffer on SPOOL, then sends `messages` PackedForward messages
 * of 1,000 ~150-byte events, each with its own chunk id, over
 * `connections` sockets with up to `window` messages unacked per socket.
 * Reports events/s, MB/s, ack latency (median, p99) and lf-buffer's
 * commits, fdatasyncs and peak RSS. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "sock.h"
#include "stream.h"

#define EVENTS 1000

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* One message: head, entries, options with a fresh 24-char chunk id. */
static void
make_message(struct buf *m, const struct buf *entries, unsigned seq)
{
	char tok[25];

	snprintf(tok, sizeof tok, "bench%019u", seq);
	buf_reset(m);
	stream_pack_head(m, "bench.access", 12, entries->len);
	buf_add(m, entries->p, entries->len);
	stream_pack_options(m, EVENTS, tok, 0);
}

static void
make_entries(struct buf *e)
{
	struct buf rec = BUF_INIT;
	msgpack_packer pk;
	unsigned char head[STREAM_ENTRY_HEAD];
	char path[32];

	for (unsigned i = 0; i < EVENTS; i++) {
		buf_reset(&rec);
		msgpack_packer_init(&pk, &rec, buf_msgpack_write);
		msgpack_pack_map(&pk, 6);
		msgpack_pack_str_with_body(&pk, "host", 4);
		msgpack_pack_str_with_body(&pk, "192.168.0.12", 12);
		msgpack_pack_str_with_body(&pk, "method", 6);
		msgpack_pack_str_with_body(&pk, "GET", 3);
		snprintf(path, sizeof path, "/item/%08u", i);
		msgpack_pack_str_with_body(&pk, "path", 4);
		msgpack_pack_str_with_body(&pk, path, strlen(path));
		msgpack_pack_str_with_body(&pk, "code", 4);
		msgpack_pack_str_with_body(&pk, "200", 3);
		msgpack_pack_str_with_body(&pk, "agent", 5);
		msgpack_pack_str_with_body(&pk, "Mozilla/5.0 (X11; Linux x86_64)", 31);
		msgpack_pack_str_with_body(&pk, "referer", 7);
		msgpack_pack_str_with_body(&pk, "http://example.com/", 19);
		stream_entry_head(head, 1441588984 + i, i);
		buf_add(e, head, sizeof head);
		buf_add(e, rec.p, rec.len);
	}
	buf_free(&rec);
}

struct conn {
	int fd;
	unsigned inflight;
	double sent[64];	/* send times of the unacked messages, FIFO */
	unsigned head;
	struct stream_reader r;
};

int
main(int argc, char **argv)
{
	unsigned total = argc > 3 ? (unsigned)atoi(argv[3]) : 2000;
	int nconn = argc > 4 ? atoi(argv[4]) : 4;
	unsigned window = argc > 5 ? (unsigned)atoi(argv[5]) : 8;
	struct buf entries = BUF_INIT, msg = BUF_INIT;
	struct conn *cs;
	struct pollfd *pfd;
	double *lat, t0, t;
	unsigned sent = 0, acked = 0;
	int notify[2], status;
	char sock[4096], line[512];
	struct rusage ru;
	pid_t pid;
	FILE *log;

	if (argc < 3 || window > 64) {
		fprintf(stderr, "usage: bench_buffer LF_BUFFER SPOOL [messages] [connections] [window<=64]\n");
		return 64;
	}
	snprintf(sock, sizeof sock, "%s.sock", argv[2]);
	make_entries(&entries);
	if (pipe(notify) == -1)
		return 71;
	if ((pid = fork()) == 0) {
		char fd[16];
		snprintf(fd, sizeof fd, "%d", notify[1]);
		close(notify[0]);
		char listen[4200];
		snprintf(listen, sizeof listen, "unix:%s", sock);
		freopen("/tmp/bench_buffer.log", "w", stderr);
		execl(argv[1], "lf-buffer", "-v", "--listen", listen, "--notify-fd", fd,
		    "--flush-interval", "1s", "--chunk-limit-size", "8m", argv[2], (char *)NULL);
		_exit(127);
	}
	close(notify[1]);
	if (read(notify[0], line, 1) != 1) {
		fprintf(stderr, "lf-buffer did not start\n");
		return 69;
	}
	cs = calloc((size_t)nconn, sizeof *cs);
	pfd = calloc((size_t)nconn, sizeof *pfd);
	lat = calloc(total, sizeof *lat);
	for (int i = 0; i < nconn; i++) {
		if ((cs[i].fd = sock_unix_connect(sock)) == -1) {
			perror("connect");
			return 69;
		}
		stream_reader_init(&cs[i].r, NULL);
	}
	t0 = now();
	while (acked < total) {
		for (int i = 0; i < nconn; i++) {
			struct conn *c = &cs[i];
			while (c->inflight < window && sent < total) {
				make_message(&msg, &entries, sent);
				if (write(c->fd, msg.p, msg.len) != (ssize_t)msg.len) {
					perror("write");
					return 74;
				}
				c->sent[(c->head + c->inflight) % 64] = now();
				c->inflight++;
				sent++;
			}
			pfd[i].fd = c->fd;
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, (nfds_t)nconn, 10000) <= 0) {
			fprintf(stderr, "timed out waiting for acks\n");
			return 75;
		}
		for (int i = 0; i < nconn; i++) {
			struct conn *c = &cs[i];
			unsigned char buf[65536], *p;
			ssize_t n;
			size_t len;
			if (!(pfd[i].revents & POLLIN))
				continue;
			if ((n = read(c->fd, buf, sizeof buf)) <= 0) {
				fprintf(stderr, "connection closed\n");
				return 75;
			}
			/* acks are small maps: count whole ones */
			stream_reader_feed(&c->r, buf, (size_t)n);
			p = c->r.in.p + c->r.pos;
			while (mp_skip(p, c->r.in.len - c->r.pos, 4, &len) == MP_OK) {
				t = now();
				lat[acked++] = t - c->sent[c->head];
				c->head = (c->head + 1) % 64;
				c->inflight--;
				c->r.pos += len;
				p += len;
			}
		}
	}
	t = now() - t0;
	for (int i = 0; i < nconn; i++) {
		close(cs[i].fd);
		stream_reader_free(&cs[i].r);
	}
	kill(pid, SIGTERM);
	wait4(pid, &status, 0, &ru);
	qsort(lat, total, sizeof *lat, cmp_double);
	printf("lf-buffer: %u messages x %d events over %d connections, window %u\n",
	    total, EVENTS, nconn, window);
	printf("  committed+acked %10.0f events/s %8.1f MB/s  (%.3f s)\n",
	    (double)total * EVENTS / t, (double)total * entries.len / t / 1e6, t);
	printf("  ack latency      median %.2f ms, p99 %.2f ms\n",
	    lat[total / 2] * 1e3, lat[total * 99 / 100] * 1e3);
	if ((log = fopen("/tmp/bench_buffer.log", "r")) != NULL) {
		unsigned long commits = 0, syncs = 0;
		char *s;
		while (fgets(line, sizeof line, log))
			if ((s = strstr(line, "commits=")) != NULL)
				sscanf(s, "commits=%lu fdatasyncs=%lu", &commits, &syncs);
		fclose(log);
		printf("  group commits    %lu (%.0f/s), fdatasyncs %lu (%.0f/s), "
		    "%.1f messages per commit\n", commits, commits / t, syncs,
		    syncs / t, commits ? (double)total / commits : 0.0);
	}
	printf("  lf-buffer peak RSS %ld MB\n", ru.ru_maxrss / 1024);
	buf_free(&entries);
	buf_free(&msg);
	free(cs);
	free(pfd);
	free(lat);
	return 0;
}
