# lf: a log forwarder as small Unix tools.  GNU make.
#   make            build the tools into build/bin
#   make check      sanitizer build; unit, end-to-end and fuzz tests; man lint
#   make coverage   line coverage of lib/ under the unit and e2e tests
#   make bench      throughput figures (events/s, MB/s, peak RSS)
#   make install    PREFIX, DESTDIR, BINDIR, MANDIR as usual

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
CC      ?= cc
CFLAGS  ?= -O2 -g
O       ?= build
VERSION  = 0.1.0

LF_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	-Wno-missing-field-initializers -Ilib -MMD -MP \
	-DLF_VERSION=\"$(VERSION)\"
LIBS    = -lmsgpackc -lev -lbsd -lyajl -lcrypto -lz -lm
SAN     = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all

TOOLS   = $(patsubst cmd/%.c,%,$(wildcard cmd/*.c))
LIBSRC  = $(wildcard lib/*.c)
LIBOBJ  = $(LIBSRC:%.c=$(O)/%.o)
UNITS   = $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
FUZZERS = $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
MANS    = $(wildcard man/*.[157])

all: $(TOOLS:%=$(O)/bin/%)

$(O)/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LF_CFLAGS) -c -o $@ $<

$(O)/liblf.a: $(LIBOBJ)
	rm -f $@
	ar rcs $@ $(LIBOBJ)

$(O)/bin/%: cmd/%.c $(O)/liblf.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LF_CFLAGS) -o $@ $< $(O)/liblf.a $(LIBS)

$(O)/tests/%: tests/unit/%.c $(O)/liblf.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LF_CFLAGS) -o $@ $< $(O)/liblf.a $(LIBS) -lcmocka

# Test programs (fake destinations and the like), not shipped.
$(O)/tests/tools/%: tests/tools/%.c $(O)/liblf.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LF_CFLAGS) -o $@ $< $(O)/liblf.a $(LIBS)

# libFuzzer wants clang and its own instrumentation of every object.
build/fuzz/%: tests/fuzz/%.c $(LIBSRC) lib/*.h
	@mkdir -p $(@D)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Ilib \
	    -fsanitize=fuzzer,address,undefined -o $@ $< $(LIBSRC) $(LIBS)

$(O)/bench/%: bench/%.c $(O)/liblf.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LF_CFLAGS) -o $@ $< $(O)/liblf.a $(LIBS)

# faultinj is an LD_PRELOAD library for the failure-branch tests.  It is
# built without sanitizers: it only forwards calls, and an instrumented
# preload would have to come before the ASan runtime.
$(O)/tests/tools/faultinj.so: tests/tools/faultinj.c
	@mkdir -p $(@D)
	$(CC) -O1 -g -std=c11 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

TESTTOOLS = $(filter-out faultinj,$(patsubst tests/tools/%.c,%,$(wildcard tests/tools/*.c)))
units: $(UNITS:%=$(O)/tests/%) $(TESTTOOLS:%=$(O)/tests/tools/%) \
	$(O)/tests/tools/faultinj.so
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

BENCHES = $(patsubst bench/%.c,%,$(wildcard bench/bench_*.c))
bench: all $(BENCHES:%=$(O)/bench/%)
	bench/run $(O)

install: all
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7
	for t in $(TOOLS); do install -m 755 $(O)/bin/$$t $(DESTDIR)$(BINDIR)/; done
	for m in $(MANS); do s=$${m##*.}; \
	    install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done

clean:
	rm -rf build

.PHONY: all units fuzzers check coverage bench install clean
.SECONDARY:

-include $(wildcard $(O)/lib/*.d $(O)/bin/*.d $(O)/tests/*.d $(O)/tests/tools/*.d)
