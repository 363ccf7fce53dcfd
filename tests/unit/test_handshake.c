/* Unit tests for lib/handshake (HELO / PING / PONG) and lib/secret.
 *
 * The digests are checked against fixed vectors computed independently
 * with Python's hashlib (research/forward-protocol.md section 9, item
 * 14, gives the same values).  The client is fed the research's
 * Fluentd-style HELO byte for byte, and both sides are run against each
 * other over a socketpair: right key, wrong key, wrong password, a
 * server that does not know the key, the same hostname on both ends, an
 * invalid PING, an oversized message, an early close. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "dial.h"
#include "handshake.h"
#include "mp.h"
#include "secret.h"

/* hashlib.sha512(salt + b"client.example" + bytes(range(16)) +
 * b"secret").hexdigest(), salt = b"0123456789abcdef" * 2 */
static const char PING_HEX[] = "3a680037d3979b4f789647cd22e7e55f2197791eb"
    "498799823c424e2213124ed63938d1c422f50e08ec02957ef44df338e46c77e8ea16"
    "4b0dde6d64e171b30df";
/* hashlib.sha512(bytes(range(16, 32)) + b"alice" + b"pw") */
static const char PW_HEX[] = "175443d1726b2836999b8b7b54c1fcf0a2ec1071f20f"
    "bec9f6e0a7594cf70f208e7ed315db82d7e4f45981d04990e9b9b46ea8f69444a5cf"
    "5e25601d72aa83e5";
/* hashlib.sha512(bytes(range(16, 32))): empty user and password */
static const char EMPTY_HEX[] = "743ea02a3e4ce5c64fe19855f611fdc5897737c0e6"
    "ff65226126edbd97fa0b9f67f4588b85662b8b3ec267eb787442fc04b49e0c7b1fcc"
    "a0200ed774975472a0";
/* hashlib.sha512(salt + b"server.example" + bytes(range(16)) + b"secret") */
static const char PONG_HEX[] = "3389a63bef56054281d75fb7b05965b0d1b1ea9eba"
    "25b4594ed8e06a02e725af1fbf401cdbe697423c388ac1948566570a6f592284a536"
    "370ca36a5ccf88cbbd";

static const char SALT[] = "0123456789abcdef0123456789abcdef";

static void
test_digest_vectors(void **state)
{
	unsigned char nonce[16], auth[16];
	char out[HS_HEX + 1];
	int i;

	(void)state;
	for (i = 0; i < 16; i++) {
		nonce[i] = (unsigned char)i;
		auth[i] = (unsigned char)(16 + i);
	}
	hs_digest(out, SALT, 32, "client.example", 14, nonce, 16, "secret", 6);
	assert_string_equal(out, PING_HEX);
	hs_digest(out, auth, 16, "alice", 5, "pw", 2, "", 0);
	assert_string_equal(out, PW_HEX);
	hs_digest(out, auth, 16, "", 0, "", 0, "", 0);
	assert_string_equal(out, EMPTY_HEX);
	hs_digest(out, SALT, 32, "server.example", 14, nonce, 16, "secret", 6);
	assert_string_equal(out, PONG_HEX);
}

/* ---- a fixture: both ends of a socketpair ---- */

struct pair {
	int sv[2];
	struct secret ckey, skey, cpw, spw;
	struct hs_client_conf cc;
	struct hs_server_conf sc;
	struct hs_user user;
	struct hs c, s;
	int crc, src;
};

static void
pair_init(struct pair *p, const char *ckey, const char *skey)
{
	memset(p, 0, sizeof *p);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    p->sv), 0);
	assert_int_equal(secret_set(&p->ckey, ckey, strlen(ckey)), 0);
	assert_int_equal(secret_set(&p->skey, skey, strlen(skey)), 0);
	assert_int_equal(secret_set(&p->cpw, "pw", 2), 0);
	assert_int_equal(secret_set(&p->spw, "pw", 2), 0);
	p->cc.self_hostname = "client.example";
	p->cc.shared_key = &p->ckey;
	p->sc.self_hostname = "server.example";
	p->sc.shared_key = &p->skey;
	p->sc.keepalive = 1;
	p->user.name = "alice";
	p->user.password = &p->spw;
	p->sc.users = &p->user;
	p->sc.nusers = 1;
}

static void
pair_free(struct pair *p)
{
	close(p->sv[0]);
	close(p->sv[1]);
	secret_free(&p->ckey);
	secret_free(&p->skey);
	secret_free(&p->cpw);
	secret_free(&p->spw);
}

/* Step both sides until neither waits; at most a few rounds. */
static void
pair_run(struct pair *p)
{
	int i, ev;

	hs_client_init(&p->c, &p->cc);
	hs_server_init(&p->s, &p->sc);
	p->crc = p->src = HS_AGAIN;
	for (i = 0; i < 20 && (p->crc == HS_AGAIN || p->src == HS_AGAIN);
	    i++) {
		if (p->src == HS_AGAIN)
			p->src = hs_step(&p->s, &dial_sock_ops, NULL, p->sv[1],
			    &ev);
		if (p->crc == HS_AGAIN)
			p->crc = hs_step(&p->c, &dial_sock_ops, NULL, p->sv[0],
			    &ev);
		/* a refusing server closes once its PONG is out */
		if (p->src == HS_FAIL && p->sv[1] != -1) {
			shutdown(p->sv[1], SHUT_WR);
		}
	}
}

static void
test_both_sides_agree(void **state)
{
	struct pair p;
	const unsigned char *q;

	(void)state;
	pair_init(&p, "secret", "secret");
	pair_run(&p);
	assert_int_equal(p.src, HS_DONE);
	assert_int_equal(p.crc, HS_DONE);
	assert_string_equal(p.c.peer_host, "server.example");
	assert_string_equal(p.s.peer_host, "client.example");
	assert_int_equal(p.c.keepalive, 1);
	assert_int_equal(hs_leftover(&p.c, &q), 0);
	pair_free(&p);
}

static void
test_user_auth(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, "secret", "secret");
	p.sc.user_auth = 1;
	p.cc.username = "alice";
	p.cc.password = &p.cpw;
	pair_run(&p);
	assert_int_equal(p.src, HS_DONE);
	assert_int_equal(p.crc, HS_DONE);
	assert_string_equal(p.s.user, "alice");

	/* the wrong password */
	secret_free(&p.cpw);
	assert_int_equal(secret_set(&p.cpw, "nope", 4), 0);
	pair_run(&p);
	assert_int_equal(p.src, HS_FAIL);
	assert_int_equal(p.crc, HS_FAIL);
	assert_int_equal(errno, EACCES);
	assert_string_equal(p.c.reason,
	    "refused by the server: username/password mismatch");
	assert_non_null(strstr(p.s.reason, "username/password mismatch"));

	/* no user at all */
	p.cc.username = NULL;
	p.cc.password = NULL;
	pair_run(&p);
	assert_int_equal(p.src, HS_FAIL);
	assert_int_equal(p.crc, HS_FAIL);
	pair_free(&p);
}

static void
test_wrong_key_refused(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, "secret", "other");
	pair_run(&p);
	assert_int_equal(p.src, HS_FAIL);
	assert_int_equal(p.crc, HS_FAIL);
	assert_int_equal(errno, EACCES);
	assert_string_equal(p.c.reason,
	    "refused by the server: shared_key mismatch");
	assert_string_equal(p.s.reason,
	    "client client.example: shared key mismatch");
	/* the reason never carries the key */
	assert_null(strstr(p.c.reason, "secret"));
	assert_null(strstr(p.s.reason, "other"));
	pair_free(&p);
}

static void
test_same_hostname_refused(void **state)
{
	struct pair p;

	(void)state;
	pair_init(&p, "secret", "secret");
	p.sc.self_hostname = "client.example";
	pair_run(&p);
	assert_int_equal(p.crc, HS_FAIL);
	assert_non_null(strstr(p.c.reason, "hostname is ours"));
	pair_free(&p);
}

/* ---- the client against scripted server bytes ---- */

/* The research's Fluentd-style HELO: nonce 00..0f, auth 10..1f, bin8. */
static size_t
helo(unsigned char *b, int as_str)
{
	static const unsigned char head[] = {
		0x92, 0xa4, 'H', 'E', 'L', 'O', 0x83,
		0xa5, 'n', 'o', 'n', 'c', 'e',
	};
	size_t n = 0;
	int i;

	memcpy(b, head, sizeof head);
	n = sizeof head;
	b[n++] = as_str ? 0xb0 : 0xc4;		/* fixstr 16 (Fluent Bit) */
	if (!as_str)
		b[n++] = 0x10;
	for (i = 0; i < 16; i++)
		b[n++] = (unsigned char)i;
	memcpy(b + n, "\xa4" "auth", 5);
	n += 5;
	b[n++] = as_str ? 0xb0 : 0xc4;
	if (!as_str)
		b[n++] = 0x10;
	for (i = 0; i < 16; i++)
		b[n++] = (unsigned char)(16 + i);
	memcpy(b + n, "\xa9" "keepalive" "\xc3", 11);
	return n + 11;
}

struct ping {
	char host[64], salt[64], dig[HS_HEX + 1], user[64], pw[HS_HEX + 1];
};

static void
get_str(const unsigned char **p, const unsigned char *end, char *dst,
    size_t cap)
{
	struct mp_obj o;

	assert_int_equal(mp_read(p, end, &o), 0);
	assert_int_equal(o.type, MP_STR);	/* never bin: Fluent Bit */
	assert_true(o.n < cap);
	memcpy(dst, o.p, o.n);
	dst[o.n] = '\0';
}

static void
read_ping(int fd, struct ping *pg)
{
	unsigned char b[HS_MAX];
	const unsigned char *p = b, *end;
	struct mp_obj o;
	char kind[8];
	ssize_t n;

	n = read(fd, b, sizeof b);
	assert_true(n > 0);
	end = b + n;
	assert_int_equal(mp_read(&p, end, &o), 0);
	assert_int_equal(o.type, MP_ARRAY);
	assert_int_equal(o.n, 6);
	get_str(&p, end, kind, sizeof kind);
	assert_string_equal(kind, "PING");
	get_str(&p, end, pg->host, sizeof pg->host);
	get_str(&p, end, pg->salt, sizeof pg->salt);
	get_str(&p, end, pg->dig, sizeof pg->dig);
	get_str(&p, end, pg->user, sizeof pg->user);
	get_str(&p, end, pg->pw, sizeof pg->pw);
	assert_ptr_equal(p, end);
}

/* ["PONG", ok, reason, host, digest] */
static size_t
pong(unsigned char *b, int ok, const char *why, const char *host,
    const char *dig)
{
	size_t n = 0, l;

	b[n++] = 0x95;
	memcpy(b + n, "\xa4PONG", 5);
	n += 5;
	b[n++] = ok ? 0xc3 : 0xc2;
	l = strlen(why);
	b[n++] = (unsigned char)(0xa0 | l);
	memcpy(b + n, why, l);
	n += l;
	l = strlen(host);
	b[n++] = (unsigned char)(0xa0 | l);
	memcpy(b + n, host, l);
	n += l;
	l = strlen(dig);
	if (l > 0) {
		b[n++] = 0xd9;
		b[n++] = (unsigned char)l;
	} else
		b[n++] = 0xa0;
	memcpy(b + n, dig, l);
	return n + l;
}

struct client {
	int sv[2];
	struct secret key, pw;
	struct hs_client_conf cc;
	struct hs h;
	int ev;
};

static void
client_init(struct client *c, int as_str)
{
	unsigned char b[256];
	size_t n;

	memset(c, 0, sizeof *c);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    c->sv), 0);
	assert_int_equal(secret_set(&c->key, "secret", 6), 0);
	assert_int_equal(secret_set(&c->pw, "pw", 2), 0);
	c->cc.self_hostname = "client.example";
	c->cc.shared_key = &c->key;
	c->cc.username = "alice";
	c->cc.password = &c->pw;
	hs_client_init(&c->h, &c->cc);
	assert_int_equal(hs_step(&c->h, &dial_sock_ops, NULL, c->sv[0],
	    &c->ev), HS_AGAIN);
	assert_int_equal(c->ev, EV_READ);
	n = helo(b, as_str);
	assert_int_equal(write(c->sv[1], b, n), (ssize_t)n);
	assert_int_equal(hs_step(&c->h, &dial_sock_ops, NULL, c->sv[0],
	    &c->ev), HS_AGAIN);
	assert_int_equal(c->ev, EV_READ);
}

static void
client_free(struct client *c)
{
	close(c->sv[0]);
	close(c->sv[1]);
	secret_free(&c->key);
	secret_free(&c->pw);
}

static int
client_pong(struct client *c, const void *b, size_t n)
{
	assert_int_equal(write(c->sv[1], b, n), (ssize_t)n);
	return hs_step(&c->h, &dial_sock_ops, NULL, c->sv[0], &c->ev);
}

/* Against the Fluentd-style HELO of the research (and its Fluent Bit
 * variant with str values), the PING carries the digests the vectors
 * say for the salt it chose, and a PONG with the right digest ends it. */
static void
test_client_against_vectors(void **state)
{
	unsigned char nonce[16], b[512];
	struct client c;
	struct ping pg;
	char want[HS_HEX + 1];
	int i, as_str;

	(void)state;
	for (i = 0; i < 16; i++)
		nonce[i] = (unsigned char)i;
	for (as_str = 0; as_str < 2; as_str++) {
		client_init(&c, as_str);
		read_ping(c.sv[1], &pg);
		assert_string_equal(pg.host, "client.example");
		assert_int_equal(strlen(pg.salt), 32);
		hs_digest(want, pg.salt, 32, "client.example", 14, nonce, 16,
		    "secret", 6);
		assert_string_equal(pg.dig, want);
		assert_string_equal(pg.user, "alice");
		assert_string_equal(pg.pw, PW_HEX);
		hs_digest(want, pg.salt, 32, "server.example", 14, nonce, 16,
		    "secret", 6);
		assert_int_equal(client_pong(&c, b, pong(b, 1, "",
		    "server.example", want)), HS_DONE);
		assert_string_equal(c.h.peer_host, "server.example");
		client_free(&c);
	}
}

/* A server that does not know the key cannot answer with its digest. */
static void
test_wrong_server_digest_refused(void **state)
{
	unsigned char b[512];
	struct client c;
	struct ping pg;

	(void)state;
	client_init(&c, 0);
	read_ping(c.sv[1], &pg);
	/* the digest for the fixed salt, not the one the client chose */
	assert_int_equal(client_pong(&c, b, pong(b, 1, "", "server.example",
	    PONG_HEX)), HS_FAIL);
	assert_int_equal(errno, EACCES);
	assert_string_equal(c.h.reason, "the server's digest does not match: "
	    "it does not know our shared key");
	client_free(&c);

	/* a server echoing our own digest back is no better */
	client_init(&c, 0);
	read_ping(c.sv[1], &pg);
	assert_int_equal(client_pong(&c, b, pong(b, 1, "", "server.example",
	    pg.dig)), HS_FAIL);
	client_free(&c);
}

static void
test_client_refused_and_garbage(void **state)
{
	unsigned char b[HS_MAX + 64];
	struct client c;
	struct ping pg;

	(void)state;
	client_init(&c, 0);
	read_ping(c.sv[1], &pg);
	assert_int_equal(client_pong(&c, b, pong(b, 0, "shared_key mismatch",
	    "", "")), HS_FAIL);
	assert_string_equal(c.h.reason,
	    "refused by the server: shared_key mismatch");
	client_free(&c);

	/* a PONG of 4 elements */
	client_init(&c, 0);
	read_ping(c.sv[1], &pg);
	b[0] = 0x94;
	memcpy(b + 1, "\xa4PONG\xc3\xa0\xa0", 8);
	assert_int_equal(client_pong(&c, b, 9), HS_FAIL);
	assert_int_equal(errno, EPROTO);
	client_free(&c);

	/* a message longer than the bound: a str32 of 8 KiB */
	client_init(&c, 0);
	read_ping(c.sv[1], &pg);
	memset(b, 'x', sizeof b);
	memcpy(b, "\xdb\x00\x00\x20\x00", 5);
	assert_int_equal(client_pong(&c, b, sizeof b), HS_FAIL);
	assert_non_null(strstr(c.h.reason, "over 4096 bytes"));
	client_free(&c);

	/* the server closes before its PONG */
	client_init(&c, 0);
	read_ping(c.sv[1], &pg);
	shutdown(c.sv[1], SHUT_WR);
	assert_int_equal(hs_step(&c.h, &dial_sock_ops, NULL, c.sv[0], &c.ev),
	    HS_FAIL);
	assert_int_equal(errno, ECONNRESET);
	client_free(&c);

	/* not msgpack at all: a TLS server's alert, say */
	client_init(&c, 0);
	hs_client_init(&c.h, &c.cc);
	read_ping(c.sv[1], &pg);
	assert_int_equal(client_pong(&c, "\xc1\x15\x03", 3), HS_FAIL);
	assert_int_equal(errno, EPROTO);
	client_free(&c);
}

/* The server answers an invalid PING with PONG false and fails. */
static void
test_server_invalid_ping(void **state)
{
	static const unsigned char ping5[] = {
		0x95, 0xa4, 'P', 'I', 'N', 'G', 0xa1, 'c', 0xa1, 's',
		0xa1, 'd', 0xa0,
	};
	struct secret key;
	struct hs_server_conf sc = { 0 };
	struct hs h;
	unsigned char b[HS_MAX];
	const unsigned char *p, *end;
	struct mp_obj o;
	int sv[2], ev;
	ssize_t n;

	(void)state;
	assert_int_equal(secret_set(&key, "secret", 6), 0);
	sc.self_hostname = "server.example";
	sc.shared_key = &key;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
	    sv), 0);
	hs_server_init(&h, &sc);
	assert_int_equal(hs_step(&h, &dial_sock_ops, NULL, sv[1], &ev),
	    HS_AGAIN);
	n = read(sv[0], b, sizeof b);	/* the HELO: nonce and auth as bin */
	assert_int_equal(n, 1 + 5 + 1 + 6 + 18 + 5 + 18 + 10 + 1);
	assert_memory_equal(b, "\x92\xa4HELO\x83\xa5nonce\xc4\x10", 15);
	assert_int_equal(write(sv[0], ping5, sizeof ping5), sizeof ping5);
	assert_int_equal(hs_step(&h, &dial_sock_ops, NULL, sv[1], &ev),
	    HS_FAIL);
	assert_int_equal(errno, EACCES);
	n = read(sv[0], b, sizeof b);
	assert_true(n > 0);
	p = b;
	end = b + n;
	assert_int_equal(mp_read(&p, end, &o), 0);
	assert_int_equal(o.n, 5);
	assert_int_equal(mp_read(&p, end, &o), 0);
	assert_true(mp_streq(&o, "PONG"));
	assert_int_equal(mp_read(&p, end, &o), 0);
	assert_int_equal(o.type, MP_BOOL);
	assert_int_equal(o.v.b, 0);
	assert_int_equal(mp_read(&p, end, &o), 0);
	assert_true(mp_streq(&o, "invalid ping message"));
	close(sv[0]);
	close(sv[1]);
	secret_free(&key);
}

/* ---- secrets ---- */

static void
write_file(const char *path, const char *s, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(s, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_secret_read(void **state)
{
	char dir[] = "/tmp/lf-secret-XXXXXX", path[64], err[256];
	struct secret s;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/key", dir);

	write_file(path, "s3cret\n", 0600);
	assert_int_equal(secret_read(&s, path, err, sizeof err), 0);
	assert_int_equal(s.n, 6);
	assert_memory_equal(s.p, "s3cret", 7);
	secret_free(&s);
	assert_null(s.p);

	/* only one newline goes; inner bytes stay */
	write_file(path, "a b\n\n", 0400);
	assert_int_equal(secret_read(&s, path, err, sizeof err), 0);
	assert_int_equal(s.n, 4);
	assert_memory_equal(s.p, "a b\n", 4);
	secret_free(&s);

	write_file(path, "s3cret\n", 0640);
	assert_int_equal(secret_read(&s, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "chmod 600"));
	assert_null(strstr(err, "s3cret"));
	assert_null(s.p);

	write_file(path, "s3cret", 0604);
	assert_int_equal(secret_read(&s, path, err, sizeof err), -1);

	write_file(path, "\n", 0600);
	assert_int_equal(secret_read(&s, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "empty"));

	assert_int_equal(secret_read(&s, dir, err, sizeof err), -1);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(path);
	assert_int_equal(secret_read(&s, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "No such file"));
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digest_vectors),
		cmocka_unit_test(test_both_sides_agree),
		cmocka_unit_test(test_user_auth),
		cmocka_unit_test(test_wrong_key_refused),
		cmocka_unit_test(test_same_hostname_refused),
		cmocka_unit_test(test_client_against_vectors),
		cmocka_unit_test(test_wrong_server_digest_refused),
		cmocka_unit_test(test_client_refused_and_garbage),
		cmocka_unit_test(test_server_invalid_ping),
		cmocka_unit_test(test_secret_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
