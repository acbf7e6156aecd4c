# Earshot — the two commands a new user needs are `make demo` and `make test` (see README.md).
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(DESTDIR)$(PREFIX)/bin
SYSCONFDIR ?= $(DESTDIR)/etc
UNITDIR ?= $(DESTDIR)/etc/systemd/system
SYSUSERSDIR ?= $(DESTDIR)$(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(DESTDIR)$(PREFIX)/lib/tmpfiles.d
SWIFT ?= swift
STRIP ?= strip

.PHONY: all build release demo test deps deps-build install install-files uninstall bench clean verify-units fuzz soak deb man

all: build

# Build and test dependencies (a development or CI machine): PulseAudio, NumPy, promtool, ...
deps:
	sh scripts/install-deps.sh test

# Only what building the release binary needs (the sensor box): no test dependencies.
deps-build:
	sh scripts/install-deps.sh build

build: deps
	$(SWIFT) build

# Statically linked Swift runtime and Foundation: ~6 MB less resident memory on the box (measured:
# 25.7 MB vs 32.5 MB RSS) and no Swift toolchain needed where it is installed.
release: deps-build
	$(SWIFT) build -c release --static-swift-stdlib --product earshot

# Runs the real daemon on a box without a sound card: a generated recording is played in real time
# through ALSA's file plugin, published on a socket in a temp dir, and shown with `earshot tail`.
demo: release
	.build/release/earshot demo $(DEMO_ARGS)

# Installs what is missing, builds (the end-to-end tests run the built binary), fuzzes every parser and the
# analyzer for a short time (FUZZ_SECONDS each), soaks the daemon for about 10 minutes (SOAK_HOURS of audio
# at 100x real time), runs every test.
FUZZ_SECONDS ?= 60
FUZZ_EXTRA_SECONDS ?= 25
SOAK_HOURS ?= 16
test: deps
	$(SWIFT) build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_EXTRA_SECONDS=$(FUZZ_EXTRA_SECONDS) bash scripts/fuzz.sh
	python3 bench/soak.py --binary .build/debug/earshot --audio-hours $(SOAK_HOURS) --sample-every 15
	$(MAKE) deb
	$(SWIFT) test --no-parallel

# The full soak: 24 hours of audio at 100x real time through the release binary (about 15 minutes).
soak: deps release
	python3 bench/soak.py --binary .build/release/earshot --audio-hours 24 --sample-every 15 --json bench/soak-last.json

# libFuzzer + AddressSanitizer on the WAV reader, the command parser, the YAML loader, the analyzer (also with
# the band filter bank on), the MQTT spool reader, the credentials file and calibrate's YAML line editor,
# FUZZ_SECONDS (default 300) each; see scripts/fuzz.sh.
fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-300} bash scripts/fuzz.sh

# The Debian package .build/deb/earshot_<version>_<arch>.deb (scripts/make-deb.sh: stripped release binary,
# units, sysusers/tmpfiles, the conffile, docs, man pages, maintainer scripts; Depends from dpkg-shlibdeps),
# checked with lintian (overrides: packaging/deb/lintian-overrides). DebianPackageTests (in `make test`) install it with dpkg -i, run it, and remove it.
deb: release man
	sh scripts/make-deb.sh .build/release/earshot .build/man .build/deb
	lintian --fail-on error,warning .build/deb/earshot_*.deb

# A man page per command (earshot.1, earshot.run.1, ...) from swift-argument-parser's generate-manual plugin
# (it builds and runs the debug binary; the pages are the same for every configuration).
man:
	rm -rf .build/man .build/plugins/GenerateManual/outputs
	$(SWIFT) package plugin generate-manual --configuration debug --multi-page --authors "Earshot maintainers"
	mkdir -p .build/man && cp .build/plugins/GenerateManual/outputs/earshot/*.1 .build/man/

verify-units:
	systemd-analyze verify systemd/earshot.service systemd/earshot.socket systemd/earshot@.service

install: release install-files

# Copies the files only (BIN defaults to the release build); the tests run it with a debug binary.
BIN ?= .build/release/earshot
# The binary is installed stripped (symbols are not needed to run it; measured: release 85.1 MB -> 62.2 MB,
# the rest is mostly the statically linked Foundation).
install-files:
	install -d $(BINDIR) $(UNITDIR) $(SYSCONFDIR)/earshot $(DESTDIR)$(PREFIX)/share/doc/earshot $(SYSUSERSDIR) $(TMPFILESDIR)
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/earshot/README.md
	install -m 0755 $(BIN) $(BINDIR)/earshot
	$(STRIP) --strip-all $(BINDIR)/earshot
	install -m 0644 systemd/earshot.sysusers.conf $(SYSUSERSDIR)/earshot.conf
	install -m 0644 systemd/earshot.tmpfiles.conf $(TMPFILESDIR)/earshot.conf
	sed 's|/usr/local/|$(PREFIX)/|g' systemd/earshot.service > $(UNITDIR)/earshot.service
	sed 's|/usr/local/|$(PREFIX)/|g' systemd/earshot@.service > $(UNITDIR)/earshot@.service
	sed 's|/usr/local/|$(PREFIX)/|g' systemd/earshot.socket > $(UNITDIR)/earshot.socket
	chmod 0644 $(UNITDIR)/earshot.service $(UNITDIR)/earshot@.service $(UNITDIR)/earshot.socket
	@if [ -e $(SYSCONFDIR)/earshot/earshot.yaml ]; then \
		echo "keeping existing $(SYSCONFDIR)/earshot/earshot.yaml (new example: $(SYSCONFDIR)/earshot/earshot.yaml.example)"; \
		install -m 0644 config/earshot.yaml $(SYSCONFDIR)/earshot/earshot.yaml.example; \
	else \
		install -m 0644 config/earshot.yaml $(SYSCONFDIR)/earshot/earshot.yaml; \
	fi
	@# On the box itself (no DESTDIR): create the earshot user and /run/earshot now, not only at next boot.
	@# An older unit (DynamicUser=yes) left /run/earshot as a symlink into /run/private: replace it.
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null 2>&1; then \
		if [ -L /run/earshot ]; then rm -f /run/earshot; fi; \
		systemd-sysusers $(SYSUSERSDIR)/earshot.conf && systemd-tmpfiles --create $(TMPFILESDIR)/earshot.conf; \
	fi
	@echo "installed; now: systemctl daemon-reload && systemctl enable --now earshot"

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/earshot
	rm -f $(BINDIR)/earshot $(UNITDIR)/earshot.service $(UNITDIR)/earshot@.service $(UNITDIR)/earshot.socket
	rm -f $(SYSUSERSDIR)/earshot.conf $(TMPFILESDIR)/earshot.conf
	@echo "kept $(SYSCONFDIR)/earshot/ and the earshot user (remove them by hand if you want)"

bench: deps release
	bash bench/run.sh

clean:
	rm -rf .build
