# supervise: build, test, install.
#
#   make                 build every program into $(O)/bin
#   make check           build and run the test suite (prove over t/)
#   make check-asan      the whole suite under AddressSanitizer + UBSan
#   make run             start supervised on a local spool (see README)
#   make install         PREFIX, DESTDIR, BINDIR, MANDIR
#
# Each program in spool-tools/*.c and src/supervised.c links libsupervise.a,
# built from the other src/*.c, so a binary carries only what it uses.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
O ?= build

CC ?= cc
CFLAGS ?= -O2 -g
override CFLAGS := -std=c11 -Wall -Wextra -D_GNU_SOURCE $(CFLAGS)
PKGS = libmicrohttpd libgit2 jansson liburiparser
# Deferred (=): pkg-config runs after `deps` may have installed the packages.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS += -lpthread

LIBSRC := $(filter-out src/supervised.c,$(wildcard src/*.c))
LIBOBJ := $(LIBSRC:src/%.c=$(O)/src/%.o)
LIB := $(O)/libsupervise.a
TOOLS := $(patsubst spool-tools/%.c,$(O)/bin/%,$(wildcard spool-tools/*.c))
SCRIPTS := $(patsubst spool-tools/%.sh,$(O)/bin/%,$(wildcard spool-tools/*.sh))
PROGS := $(O)/bin/supervised $(TOOLS) $(SCRIPTS)
TESTS := $(patsubst t/%.c,$(O)/t/%,$(wildcard t/*.c))
MANS := $(wildcard man/*.[1-8])

all: $(PROGS)

$(O)/.deps: mk/deps.sh
	@sh mk/deps.sh build
	@mkdir -p $(O) && touch $@

$(O)/src/%.o: src/%.c src/supervise.h | $(O)/.deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -c -o $@ $<

$(LIB): $(LIBOBJ)
	rm -f $@
	$(AR) rcs $@ $(LIBOBJ)

$(O)/bin/supervised: $(O)/src/supervised.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS) $(LDLIBS)

$(O)/bin/%: spool-tools/%.c $(LIB) src/supervise.h | $(O)/.deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS) $(LDLIBS)

$(O)/bin/%: spool-tools/%.sh
	@mkdir -p $(@D)
	cp $< $@ && chmod 755 $@

$(O)/t/%: t/%.c t/tap.h $(LIB) src/supervise.h | $(O)/.deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc -It $(LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS) $(LDLIBS)

# The MCP TypeScript SDK for the end-to-end tests, pinned in t/package.json.
t/node_modules/.stamp: t/package.json t/package-lock.json
	@sh mk/deps.sh check
	cd t && npm ci --no-audit --no-fund --loglevel=error
	touch $@

check: all $(TESTS) t/node_modules/.stamp
	PATH="$(CURDIR)/$(O)/bin:$$PATH" SUPERVISE_BUILD="$(CURDIR)/$(O)" \
	    prove $(PROVEFLAGS) t/

SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
check-asan:
	$(MAKE) O=build-asan CC=clang CFLAGS="-O1 -g $(SAN)" LDFLAGS="$(SAN)" \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 check

run: all
	@sh mk/run.sh "$(CURDIR)/$(O)/bin"

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
