# lf: a log forwarder as small Unix tools.  GNU make.
#   make            build the tools into build/bin
#   make check      sanitizer build; unit, end-to-end and fuzz tests; man lint
#   make coverage   line coverage of lib/ under the unit and e2e tests
#   make bench      throughput figures (events/s, MB/s, peak RSS)
#   make install    PREFIX, DESTDIR, BINDIR, MANDIR as usual; make uninstall
#   CPPFLAGS, CFLAGS, LDFLAGS and PKG_CONFIG are honoured

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
CC      ?= cc
CFLAGS  ?= -O2 -g
PKG_CONFIG ?= pkg-config
O       ?= build
VERSION  = 0.1.0

# Library flags from pkg-config where Debian ships a .pc (msgpack-c is
# "msgpack" before 6.0); libev has none, so plain -lev.  Without
# pkg-config, the plain names.  Each tool is linked --as-needed, so it
# records only the libraries its objects use (lf-spool no zlib, ...).
MSGPACK_PC := $(shell $(PKG_CONFIG) --exists msgpack-c 2>/dev/null && \
	echo msgpack-c || echo msgpack)
PCS     = $(MSGPACK_PC) libbsd yajl libssl libcrypto zlib libpcre2-8 libcurl \
	libmariadb
PC_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PCS) 2>/dev/null)
PC_LIBS := $(shell $(PKG_CONFIG) --libs $(PCS) 2>/dev/null || \
	echo -lmsgpackc -lbsd -lyajl -lssl -lcrypto -lz -lpcre2-8 -lcurl \
	-lmariadb)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || \
	echo -lcmocka)
LIBS    = $(PC_LIBS) -lev -lhttp_parser -lm

LF_CPPFLAGS = -D_GNU_SOURCE -Ilib -DLF_VERSION=\"$(VERSION)\" $(PC_CFLAGS)
LF_CFLAGS = -std=c11 -Wall -Wextra -Werror -Wshadow \
	-Wno-missing-field-initializers -MMD -MP
LF_LDFLAGS = -Wl,--as-needed
COMPILE = $(CC) $(LF_CPPFLAGS) $(CPPFLAGS) $(CFLAGS) $(LF_CFLAGS)
LINK    = $(CC) $(CFLAGS) $(LF_LDFLAGS) $(LDFLAGS)
SAN     = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all

TOOLS   = $(patsubst cmd/%.c,%,$(wildcard cmd/*.c))
LIBSRC  = $(wildcard lib/*.c)
LIBOBJ  = $(LIBSRC:%.c=$(O)/%.o)
UNITS   = $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
TESTTOOLS = $(filter-out faultinj fakedns,$(patsubst tests/tools/%.c,%,$(wildcard tests/tools/*.c)))
BENCHES = $(patsubst bench/%.c,%,$(wildcard bench/bench_*.c))
FUZZERS = $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
MANS    = $(wildcard man/*.[157])

# Every object, each with its dependency file beside it (-MMD -MP).
OBJS    = $(LIBOBJ) $(TOOLS:%=$(O)/cmd/%.o) $(UNITS:%=$(O)/tests/unit/%.o) \
	$(TESTTOOLS:%=$(O)/tests/tools/%.o) $(BENCHES:%=$(O)/bench/%.o)

all: $(TOOLS:%=$(O)/bin/%)

$(O)/%.o: %.c
	@mkdir -p $(@D)
	$(COMPILE) -c -o $@ $<

$(O)/liblf.a: $(LIBOBJ)
	rm -f $@
	ar rcs $@ $(LIBOBJ)

$(TOOLS:%=$(O)/bin/%): $(O)/bin/%: $(O)/cmd/%.o $(O)/liblf.a
	@mkdir -p $(@D)
	$(LINK) -o $@ $< $(O)/liblf.a $(LIBS)

$(UNITS:%=$(O)/tests/%): $(O)/tests/%: $(O)/tests/unit/%.o $(O)/liblf.a
	@mkdir -p $(@D)
	$(LINK) -o $@ $< $(O)/liblf.a $(LIBS) $(CMOCKA_LIBS)

# Test programs (fake destinations and the like), not shipped.
$(TESTTOOLS:%=$(O)/tests/tools/%): $(O)/tests/tools/%: $(O)/tests/tools/%.o \
    $(O)/liblf.a
	@mkdir -p $(@D)
	$(LINK) -o $@ $< $(O)/liblf.a $(LIBS)

# libFuzzer wants clang and its own instrumentation of every object: the
# library is compiled once so (fuzzer-no-link), each target links it.
FUZZCC   = clang -std=c11 $(LF_CPPFLAGS) $(CPPFLAGS) -g -O1
FUZZOBJ  = $(LIBSRC:lib/%.c=build/fuzz/lib/%.o)
build/fuzz/lib/%.o: lib/%.c lib/*.h
	@mkdir -p $(@D)
	$(FUZZCC) -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

build/fuzz/liblf.a: $(FUZZOBJ)
	ar rcs $@ $(FUZZOBJ)

build/fuzz/%: tests/fuzz/%.c tests/fuzz/*.h build/fuzz/liblf.a
	$(FUZZCC) -fsanitize=fuzzer,address,undefined $(LDFLAGS) -o $@ $< \
	    build/fuzz/liblf.a $(LIBS)

$(BENCHES:%=$(O)/bench/%): $(O)/bench/%: $(O)/bench/%.o $(O)/liblf.a
	@mkdir -p $(@D)
	$(LINK) -o $@ $< $(O)/liblf.a $(LIBS)

# faultinj is an LD_PRELOAD library for the failure-branch tests.  It is
# built without sanitizers: it only forwards calls, and an instrumented
# preload would have to come before the ASan runtime.
$(O)/tests/tools/faultinj.so: tests/tools/faultinj.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -O1 -g -std=c11 -Wall -Wextra -Werror -fPIC -shared \
	    $(LDFLAGS) -o $@ $< -ldl

# fakedns answers getaddrinfo/getnameinfo from a file (the DNS tests);
# a preload like faultinj, built the same way.
$(O)/tests/tools/fakedns.so: tests/tools/fakedns.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -O1 -g -std=c11 -Wall -Wextra -Werror -fPIC -shared \
	    $(LDFLAGS) -o $@ $< -ldl

units: $(UNITS:%=$(O)/tests/%) $(TESTTOOLS:%=$(O)/tests/tools/%) \
	$(O)/tests/tools/faultinj.so $(O)/tests/tools/fakedns.so
fuzzers: $(FUZZERS:%=build/fuzz/%)

# The test build is a second tree under build/san, built with ASan+UBSan.
check:
	$(MAKE) O=build/san CFLAGS="$(SAN)" all units
	$(MAKE) fuzzers
	tests/run build/san build/fuzz

# Line coverage of lib/ under the unit and end-to-end tests: a third tree
# under build/cov, built with --coverage, its counters reset before the run.
coverage:
	$(MAKE) O=build/cov CFLAGS="-O0 -g --coverage" all units
	find build/cov -name '*.gcda' -delete
	-tests/run build/cov
	tests/coverage build/cov

bench: all $(BENCHES:%=$(O)/bench/%)
	bench/run $(O)

install: all
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7
	for t in $(TOOLS); do install -m 755 $(O)/bin/$$t $(DESTDIR)$(BINDIR)/; done
	for m in $(MANS); do s=$${m##*.}; \
	    install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done

uninstall:
	for t in $(TOOLS); do rm -f $(DESTDIR)$(BINDIR)/$$t; done
	for m in $(MANS); do s=$${m##*.}; \
	    rm -f $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}; done

clean:
	rm -rf build

.PHONY: all units fuzzers check coverage bench install uninstall clean
.SECONDARY:

-include $(wildcard $(OBJS:.o=.d))
