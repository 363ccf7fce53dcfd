/* fakedns: name lookups from a file the test rewrites, for the DNS tests.
 * An LD_PRELOAD library, not a tool:
 *
 *   LD_PRELOAD=build/san/tests/tools/fakedns.so LF_FAKEDNS=hosts \
 *   lf-send --server app.test:24224 ...
 *
 * The file is read again at every call, one rule a line:
 *   NAME ADDR[,PORT] ...	getaddrinfo(NAME) answers these addresses, in
 *				this order; PORT, if given, replaces the
 *				service asked for (several servers on one
 *				loopback address)
 *   NAME fail			EAI_NONAME
 *   NAME again			EAI_AGAIN
 *   NAME hang			the call waits while the rule says so (the
 *				file is read again every 20 ms), then
 *				answers as the file says by then
 *   rev ADDR NAME		getnameinfo(ADDR) answers NAME
 *   rev ADDR fail|hang		as above
 * A name or address the file does not mention goes to the real libc.
 * LF_FAKEDNS_LOG=PATH appends a line per call answered from the file:
 * "getaddrinfo NAME" or "getnameinfo ADDR". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE	1024

/* Marks our addrinfo lists, for freeaddrinfo. */
static char tag[] = "fakedns";

/* The rule for key (a name, or "rev ADDR"): its words after the key in
 * out, 1; 0 when the file has none. */
static int
rule(const char *key, int rev, char *out, size_t n)
{
	const char *path = getenv("LF_FAKEDNS");
	char line[LINE], *p, *w;
	FILE *f;
	int found = 0;

	if (path == NULL || (f = fopen(path, "re")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof line, f) != NULL) {
		p = line;
		if (rev && ((w = strsep(&p, " \t\n")) == NULL ||
		    strcmp(w, "rev") != 0))
			continue;
		if ((w = strsep(&p, " \t\n")) == NULL || strcmp(w, key) != 0 ||
		    p == NULL)
			continue;
		p[strcspn(p, "\n")] = '\0';
		snprintf(out, n, "%s", p);
		found = 1;
	}
	fclose(f);
	return found;
}

/* The rule, once it no longer says hang. */
static int
settled(const char *key, int rev, char *out, size_t n)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	while (rule(key, rev, out, n)) {
		if (strcmp(out, "hang") != 0)
			return 1;
		nanosleep(&ts, NULL);
	}
	return 0;
}

static void
note(const char *call, const char *what)
{
	const char *path = getenv("LF_FAKEDNS_LOG");
	FILE *f;

	if (path == NULL || (f = fopen(path, "ae")) == NULL)
		return;
	fprintf(f, "%s %s\n", call, what);
	fclose(f);
}

struct fake {
	struct addrinfo ai;
	struct sockaddr_storage ss;
};

/* One address word, ADDR or ADDR,PORT; NULL if it is not one. */
static struct addrinfo *
one(const char *word, const char *service, int socktype)
{
	char addr[INET6_ADDRSTRLEN + 8], *comma;
	struct fake *f;
	struct sockaddr_in *in;
	struct sockaddr_in6 *in6;
	int port;

	snprintf(addr, sizeof addr, "%s", word);
	port = service ? atoi(service) : 0;
	if ((comma = strchr(addr, ',')) != NULL) {
		*comma = '\0';
		port = atoi(comma + 1);
	}
	if ((f = calloc(1, sizeof *f)) == NULL)
		return NULL;
	in = (struct sockaddr_in *)&f->ss;
	in6 = (struct sockaddr_in6 *)&f->ss;
	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((unsigned short)port);
		f->ai.ai_addrlen = sizeof *in;
	} else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((unsigned short)port);
		f->ai.ai_addrlen = sizeof *in6;
	} else {
		free(f);
		return NULL;
	}
	f->ai.ai_family = f->ss.ss_family;
	f->ai.ai_socktype = socktype ? socktype : SOCK_STREAM;
	f->ai.ai_protocol = 0;
	f->ai.ai_addr = (struct sockaddr *)&f->ss;
	f->ai.ai_canonname = tag;
	return &f->ai;
}

void
freeaddrinfo(struct addrinfo *res)
{
	static void (*real)(struct addrinfo *);
	struct addrinfo *next;

	if (res != NULL && res->ai_canonname == tag) {
		for (; res; res = next) {
			next = res->ai_next;
			free(res);
		}
		return;
	}
	if (real == NULL)
		real = (void (*)(struct addrinfo *))dlsym(RTLD_NEXT,
		    "freeaddrinfo");
	real(res);
}

static int
answer(const char *words, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
	char buf[LINE], *p = buf, *w;
	struct addrinfo *head = NULL, **tail = &head, *ai;

	if (strcmp(words, "fail") == 0)
		return EAI_NONAME;
	if (strcmp(words, "again") == 0)
		return EAI_AGAIN;
	snprintf(buf, sizeof buf, "%s", words);
	while ((w = strsep(&p, " \t")) != NULL) {
		if (*w == '\0')
			continue;
		if ((ai = one(w, service, hints ? hints->ai_socktype : 0))
		    == NULL)
			continue;
		*tail = ai;
		tail = &ai->ai_next;
	}
	if (head == NULL)
		return EAI_NONAME;
	*res = head;
	return 0;
}

int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	static int (*real)(const char *, const char *,
	    const struct addrinfo *, struct addrinfo **);
	char words[LINE];

	if (node != NULL && settled(node, 0, words, sizeof words)) {
		note("getaddrinfo", node);
		return answer(words, service, hints, res);
	}
	if (real == NULL)
		real = (int (*)(const char *, const char *,
		    const struct addrinfo *, struct addrinfo **))dlsym(RTLD_NEXT,
		    "getaddrinfo");
	return real(node, service, hints, res);
}

int
getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
    socklen_t hostlen, char *serv, socklen_t servlen, int flags)
{
	static int (*real)(const struct sockaddr *, socklen_t, char *,
	    socklen_t, char *, socklen_t, int);
	char addr[INET6_ADDRSTRLEN], words[LINE];
	const void *a = NULL;

	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (real == NULL)
		real = (int (*)(const struct sockaddr *, socklen_t, char *,
		    socklen_t, char *, socklen_t, int))dlsym(RTLD_NEXT,
		    "getnameinfo");
	if (a == NULL || host == NULL || (flags & NI_NUMERICHOST) ||
	    inet_ntop(sa->sa_family, a, addr, sizeof addr) == NULL ||
	    !settled(addr, 1, words, sizeof words))
		return real(sa, salen, host, hostlen, serv, servlen, flags);
	note("getnameinfo", addr);
	if (strcmp(words, "fail") == 0)
		return EAI_NONAME;
	if (strlen(words) >= hostlen)
		return EAI_OVERFLOW;
	memcpy(host, words, strlen(words) + 1);
	if (serv != NULL && servlen > 0)
		serv[0] = '\0';
	return 0;
}
