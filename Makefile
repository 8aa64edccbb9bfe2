# supervise: build, test, install.
#
#   make                 build every program into $(O)/bin
#   make check           build and run the test suite (prove over t/)
#   make check-asan      the whole suite under AddressSanitizer + UBSan
#   make run             start supervised on a local spool (see README)
#   make install         PREFIX, DESTDIR, BINDIR, MANDIR
#
# Each program in spool-tools/*.c, and supervised (built from DAEMONSRC,
# the files that include src/sidecar.h), links libsupervise.a, built from
# the other src/*.c, so a binary carries only what it uses.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
O ?= build
# The build directory as an absolute path, for the tests and mk/run.sh,
# which run elsewhere: O may be relative (build) or absolute (/tmp/b).
OABS = $(abspath $(O))

CC ?= cc
CFLAGS ?= -O2 -g
override CFLAGS := -std=c11 -Wall -Wextra -D_GNU_SOURCE $(CFLAGS)
PKGS = libmicrohttpd libgit2 jansson liburiparser libcrypto zlib libcurl
# Deferred (=): pkg-config runs after `deps` may have installed the packages.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS += -lpthread

DAEMONSRC := src/supervised.c src/config.c src/http.c src/calls.c \
    src/jobs.c src/decisions.c
DAEMONOBJ := $(DAEMONSRC:src/%.c=$(O)/src/%.o)
LIBSRC := $(filter-out $(DAEMONSRC),$(wildcard src/*.c))
LIBOBJ := $(LIBSRC:src/%.c=$(O)/src/%.o)
LIB := $(O)/libsupervise.a
TOOLS := $(patsubst spool-tools/%.c,$(O)/bin/%,$(wildcard spool-tools/*.c))
SCRIPTS := $(patsubst spool-tools/%.sh,$(O)/bin/%,$(wildcard spool-tools/*.sh))
PROGS := $(O)/bin/supervised $(TOOLS) $(SCRIPTS)
TESTS := $(patsubst t/%.c,$(O)/t/%,$(wildcard t/*.c))
MANS := $(wildcard man/*.[1-8])
HDRS := $(wildcard src/*.h)

all: $(PROGS)

$(O)/.deps: mk/deps.sh
	@sh mk/deps.sh build
	@mkdir -p $(O) && touch $@

$(O)/src/%.o: src/%.c $(HDRS) | $(O)/.deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -c -o $@ $<

$(LIB): $(LIBOBJ)
	rm -f $@
	$(AR) rcs $@ $(LIBOBJ)

$(O)/bin/supervised: $(DAEMONOBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(DAEMONOBJ) $(LIB) $(PKG_LIBS) $(LDLIBS)

$(O)/bin/%: spool-tools/%.c $(LIB) $(HDRS) | $(O)/.deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS) $(LDLIBS)

# supervise-top is the one program that draws on a terminal: only it links
# ncursesw, and its parts are in spool-tools/top/.
CURSES_CFLAGS = $(shell pkg-config --cflags ncursesw 2>/dev/null)
CURSES_LIBS = $(shell pkg-config --libs ncursesw 2>/dev/null)
TOP_SRC := $(wildcard spool-tools/top/*.c)
$(O)/bin/supervise-top: spool-tools/supervise-top.c $(TOP_SRC) \
    spool-tools/top/top.h $(LIB) src/supervise.h | $(O)/.deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(CURSES_CFLAGS) -Isrc -Ispool-tools/top \
	    $(LDFLAGS) -o $@ $< $(TOP_SRC) $(LIB) $(PKG_LIBS) $(CURSES_LIBS) \
	    $(LDLIBS)

$(O)/bin/%: spool-tools/%.sh
	@mkdir -p $(@D)
	cp $< $@ && chmod 755 $@

$(O)/t/%: t/%.c t/tap.h $(LIB) $(HDRS) | $(O)/.deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -It $(LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS) $(LDLIBS)

# The MCP TypeScript SDK for the end-to-end tests, pinned in t/package.json.
# After $(O)/.deps: two deps.sh runs at once (make -j) would race for apt's lock.
t/node_modules/.stamp: t/package.json t/package-lock.json | $(O)/.deps
	@sh mk/deps.sh check
	cd t && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Each test file runs under t/limit.sh: a hang fails the file that hung,
# after TEST_LIMIT seconds, instead of holding the suite.
TEST_LIMIT ?= 300
PROVE = SUPERVISE_TEST_LIMIT=$(TEST_LIMIT) \
    prove --exec 'sh $(CURDIR)/t/limit.sh' $(PROVEFLAGS)

check: all $(TESTS) t/node_modules/.stamp
	PATH="$(OABS)/bin:$$PATH" SUPERVISE_BUILD="$(OABS)" $(PROVE) t/

SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
check-asan:
	@sh mk/deps.sh clang
	$(MAKE) O=build-asan CC=clang CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" \
	    TEST_LIMIT=900 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 check

run: all
	@sh mk/deps.sh run
	@sh mk/run.sh "$(OABS)/bin"

install: all
	mkdir -p $(DESTDIR)$(BINDIR)
	for p in $(PROGS); do install -m 755 $$p $(DESTDIR)$(BINDIR)/; done
	for m in $(MANS); do s=$${m##*.}; mkdir -p $(DESTDIR)$(MANDIR)/man$$s; \
	    install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done

lint-man:
	mandoc -Tlint -W warning $(MANS)

clean:
	rm -rf build build-asan

.PHONY: all check check-asan run install lint-man clean
.SECONDARY:

# --- hardening (fuzz/, t/04xx) ---
#
#   make fuzz            build fuzz/*.c with clang, libFuzzer, ASan and UBSan
#                        into $(FUZZ_O); run each target FUZZ_SECONDS (60) s
#   make fuzz-smoke      the same for 10 s each (CI)
#   make check-valgrind  the daemon tests (VALGRIND_TESTS) with supervised
#                        under valgrind memcheck, through $$SUPERVISED_WRAPPER
#   make check-load      the load test with LOAD_N (10000) proposals
FUZZ_O ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_NAMES := $(patsubst fuzz/%.c,%,$(wildcard fuzz/*.c))
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=all \
    -fno-omit-frame-pointer

$(O)/fuzz/%: fuzz/%.c fuzz/fuzz.h $(LIB) $(HDRS) | $(O)/.deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -fsanitize=fuzzer $(LDFLAGS) \
	    -o $@ $< $(LIB) $(PKG_LIBS) $(LDLIBS)

# t/replay-NAME.c includes fuzz/NAME.c: rebuild it when the target changes.
$(FUZZ_NAMES:%=$(O)/t/replay-%): $(O)/t/replay-%: fuzz/%.c fuzz/fuzz.h \
    fuzz/replay.h

fuzz-build:
	@sh mk/deps.sh clang
	$(MAKE) O=$(FUZZ_O) CC=clang LDFLAGS="$(FUZZ_SAN)" \
	    CFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	    $(FUZZ_NAMES:%=$(FUZZ_O)/fuzz/%)

fuzz: fuzz-build
	sh fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_O) $(FUZZ_NAMES)

fuzz-smoke: fuzz-build
	sh fuzz/run.sh 10 $(FUZZ_O) $(FUZZ_NAMES)

# Every supervised started by t/lib.sh runs as $SUPERVISED_WRAPPER
# supervised ...; each writes its own log, and a log with an error is a failure
# (with --quiet, memcheck writes only errors, as ==PID== lines; a
# --PID-- line is valgrind's own, such as its warning about pidfd_open,
# which it does not know and answers ENOSYS, so the hook runner polls).  No log at all means the
# hook was not used, which fails too.  Under memcheck a commit takes ~0.1 s,
# so the burst test holds 200 calls instead of 1,000 when it sees
# $SUPERVISED_WRAPPER (SUPERVISE_BURST=N overrides).
VALGRIND_TESTS ?= $(wildcard t/03*.t) t/0410-hostile-rpc.t \
    t/0421-hostile-display.t t/0422-hostile-spool.t t/0510-egress-routes.t
VALGRIND_LOGS = $(OABS)/valgrind
VALGRIND = valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
    --log-file=$(VALGRIND_LOGS)/supervised.%p.log
check-valgrind: TEST_LIMIT = 1200
check-valgrind: all $(TESTS) t/node_modules/.stamp
	@sh mk/deps.sh valgrind
	rm -rf $(VALGRIND_LOGS) && mkdir -p $(VALGRIND_LOGS)
	@PATH="$(OABS)/bin:$$PATH" SUPERVISE_BUILD="$(OABS)" \
	    SUPERVISE_TEST_WAIT=120 SUPERVISED_WRAPPER="$(VALGRIND)" \
	    $(PROVE) $(VALGRIND_TESTS); status=$$?; \
	n=$$(ls $(VALGRIND_LOGS) | wc -l); \
	if [ "$$n" -eq 0 ]; then \
	    echo "check-valgrind: no supervised ran under valgrind" >&2; exit 1; fi; \
	bad=$$(grep -l '^==' $(VALGRIND_LOGS)/*.log); \
	if [ -n "$$bad" ]; then cat $$bad >&2; \
	    echo "check-valgrind: memcheck errors in:" $$bad >&2; exit 1; fi; \
	echo "check-valgrind: $$n supervised runs under memcheck, no errors"; \
	exit $$status

LOAD_N ?= 10000
check-load: TEST_LIMIT = 3600
check-load: all $(TESTS)
	PATH="$(OABS)/bin:$$PATH" SUPERVISE_BUILD="$(OABS)" \
	    LOAD_N=$(LOAD_N) $(PROVE) -v t/0440-load.t

.PHONY: fuzz fuzz-build fuzz-smoke check-valgrind check-load

# --- benchmarks (bench/, BENCHMARKS.md) ---
#
#   make bench           build bench/*.c and run bench/run.sh (~2 min);
#                        figures in bench/results/*.txt
#   make bench BENCH_QUICK=1    the same in about a minute
#   make bench BENCH_ONLY="latency footprint"   a subset
BENCH_LIBSRC := bench/benchlib.c bench/benchsv.c
BENCH_PROGS := $(patsubst bench/%.c,$(O)/bench/%,\
    $(filter-out $(BENCH_LIBSRC),$(wildcard bench/*.c)))

$(O)/bench/%: bench/%.c $(BENCH_LIBSRC) bench/bench.h $(LIB) $(HDRS) \
    | $(O)/.deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -Ibench $(LDFLAGS) -o $@ $< \
	    $(BENCH_LIBSRC) $(LIB) $(PKG_LIBS) $(LDLIBS)

bench-build: all $(BENCH_PROGS)

bench: bench-build
	BENCH_BUILD="$(abspath $(O))" BENCH_QUICK="$(BENCH_QUICK)" \
	    $(if $(BENCH_ONLY),BENCH_ONLY="$(BENCH_ONLY)") sh bench/run.sh

.PHONY: bench bench-build

# check-container: the sidecar image end to end (t/container/) with podman.
# As root with apt, installs podman and what it needs here when missing;
# mk/container-base.sh makes the debian:bookworm-slim base image locally
# once (debootstrap) and the engine keeps it.  CONTAINERS_CONF defaults to
# the test's own (see t/container/containers.conf).
# netavark sets the bottle network up with iptables, which its package
# does not depend on: without it every container on a network fails.
CONTAINER_PKGS = podman runc netavark aardvark-dns iptables debootstrap curl git
check-container: TEST_LIMIT = 900
check-container: all
	@missing=; for p in $(CONTAINER_PKGS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || \
	        missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "check-container: installing$$missing" >&2; \
	        export DEBIAN_FRONTEND=noninteractive; \
	        apt-get update -qq >&2 && \
	        apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	    else \
	        echo "check-container: missing Debian packages:$$missing" >&2; \
	    fi; \
	fi
	CONTAINERS_CONF="$${CONTAINERS_CONF:-$(CURDIR)/t/container/containers.conf}" \
	    SUPERVISE_CONTAINER_CLI=podman sh mk/container-base.sh
	CONTAINERS_CONF="$${CONTAINERS_CONF:-$(CURDIR)/t/container/containers.conf}" \
	    PATH="$(OABS)/bin:$$PATH" SUPERVISE_BUILD="$(OABS)" \
	    $(PROVE) t/container/

.PHONY: check-container
