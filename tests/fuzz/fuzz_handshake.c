/* libFuzzer target for the forward handshake (lib/handshake): a peer's
 * HELO, PONG or PING is untrusted input.  The first byte picks the side
 * (even: client, odd: server) and how many bytes each read returns; the
 * rest is what the peer sends.  Nothing may crash or read out of bounds,
 * and a failure must say why. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "handshake.h"
#include "secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct feed {
	const uint8_t *p;
	size_t n, step;
};

static ssize_t
f_read(void *ctx, int fd, void *p, size_t n)
{
	struct feed *f = ctx;

	(void)fd;
	if (f->n == 0)
		return 0;
	if (n > f->step)
		n = f->step;
	if (n > f->n)
		n = f->n;
	memcpy(p, f->p, n);
	f->p += n;
	f->n -= n;
	return (ssize_t)n;
}

static ssize_t
f_writev(void *ctx, int fd, const struct iovec *iov, int cnt)
{
	(void)ctx;
	(void)fd;
	return cnt > 0 ? (ssize_t)iov[0].iov_len : 0;
}

static const struct dial_ops f_ops = { NULL, NULL, f_read, f_writev,
	NULL, NULL };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hs h;
	struct secret key = { (char *)"secret", 6 }, pw = { (char *)"pw", 2 };
	struct hs_user user = { "alice", &pw };
	struct hs_client_conf cc = { "client.example", &key, "alice", &pw };
	struct hs_server_conf sc = { "server.example", &key, 1, &user, 1, 1 };
	struct feed f;
	int ev, rc, i;

	if (size < 1)
		return 0;
	f.p = data + 1;
	f.n = size - 1;
	f.step = (size_t)(data[0] >> 1) + 1;
	if (data[0] & 1)
		hs_server_init(&h, &sc);
	else
		hs_client_init(&h, &cc);
	for (i = 0, rc = HS_AGAIN; rc == HS_AGAIN && i < 10000; i++)
		rc = hs_step(&h, &f_ops, &f, 0, &ev);
	if (rc == HS_FAIL && h.reason[0] == '\0')
		__builtin_trap();
	return 0;
}
