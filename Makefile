# bottlecap — see README.md. Every target installs what it needs.
GO        ?= go
GOBIN     := $(CURDIR)/.bin
STATICCHECK_VERSION := v0.8.2
NFPM_VERSION := v2.48.0
export BOT_BOTTLE_HOME ?= $(HOME)/.bot-bottle

.PHONY: run build man docs install dist sidecar-context sidecar-image test test-deps fuzz lint bench fmt clean

# VERSION is the v* tag at HEAD, else a snapshot named after the commit;
# COMMIT the commit. Both are linked into the binary (bottlecap version),
# which does not rely on the go command's VCS stamping (off with
# -buildvcs=false, absent in a git worktree). `make dist VERSION=v1.2.3`
# overrides.
VERSION ?= $(shell git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null || \
	echo "v0.0.0-snapshot.$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
VERSION := $(VERSION)
COMMIT  := $(COMMIT)
LDFLAGS := -X main.Version=$(VERSION) -X main.Commit=$(COMMIT)

# SUDO is empty for root (CI, the dev machines) and sudo for everyone else.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# run builds the binary and starts the daemon in the foreground with the
# embedded defaults (no settings file needed).
run: build
	./bin/bottlecap serve

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/bottlecap ./cmd/bottlecap

# man writes a man page per command (bottlecap.1, bottlecap-kill.1, …) into
# bin/man from the command tree, dated by the commit rather than the build
# (SOURCE_DATE_EPOCH), so that a build is reproducible.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
man: build
	rm -rf bin/man
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) ./bin/bottlecap gen-docs --man bin/man

# docs regenerates docs/cli.md, the command line's reference, from the
# command tree; a test fails while the committed file is stale.
docs:
	$(GO) run ./cmd/bottlecap gen-docs --markdown docs/cli.md

# install puts the binary, its man pages, the systemd unit, the sysusers.d
# and tmpfiles.d files and the daemon's home and socket directory (0750) under
# $(DESTDIR)$(PREFIX). With DESTDIR empty (a real install, as root) it then
# creates the botbottle user and group and gives them the directories
# (deploy/package/postinstall.sh, as the .deb does); with DESTDIR set (a
# package or a test) it touches nothing outside DESTDIR.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
MANDIR      ?= $(PREFIX)/share/man
HOMEDIR     := /var/lib/bot-bottle
install: build man
	install -D -m 0755 bin/bottlecap $(DESTDIR)$(BINDIR)/bottlecap
	install -d -m 0755 $(DESTDIR)$(MANDIR)/man1
	install -m 0644 bin/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed 's|^ExecStart=/usr/bin/bottlecap|ExecStart=$(BINDIR)/bottlecap|' deploy/systemd/bottlecap.service \
		> $(DESTDIR)$(UNITDIR)/bottlecap.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/bottlecap.service
	install -D -m 0644 deploy/systemd/bottlecap-sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/bottlecap.conf
	install -D -m 0644 deploy/systemd/bottlecap-tmpfiles.conf $(DESTDIR)$(TMPFILESDIR)/bottlecap.conf
	install -d -m 0750 $(DESTDIR)$(HOMEDIR) $(DESTDIR)$(HOMEDIR)/run
ifeq ($(DESTDIR),)
	BOTTLECAP_SYSUSERS=$(SYSUSERSDIR)/bottlecap.conf BOTTLECAP_TMPFILES=$(TMPFILESDIR)/bottlecap.conf \
		sh deploy/package/postinstall.sh
else
	@echo "DESTDIR is set: the botbottle user and group are left to the package (deploy/package/postinstall.sh)"
endif

# dist builds the release into dist/: for each of DIST_ARCHS a static
# binary, a tar.gz archive (the binary, README, ARCHITECTURE, docs/, example
# settings, the man pages, deploy/) and a .deb (nfpm: the binary, the man
# pages, the unit, the sysusers and tmpfiles files, the socket directory,
# deploy/package/postinstall.sh), and checksums.txt. It ends by running the
# archived binary of this machine's architecture.
DIST_ARCHS ?= amd64 arm64
DIST_VERSION = $(patsubst v%,%,$(VERSION))
dist: $(GOBIN)/nfpm man
	rm -rf dist
	mkdir -p dist/build/man && cp bin/man/*.1 dist/build/man/ && gzip -9n dist/build/man/*.1
	@set -e; for arch in $(DIST_ARCHS); do \
		name=bottlecap_$(DIST_VERSION)_linux_$$arch; dir=dist/build/$$name; \
		echo "dist: $$name"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $$dir/bottlecap ./cmd/bottlecap; \
		mkdir -p $$dir/deploy $$dir/man; cp README.md ARCHITECTURE.md settings.example.yml $$dir/; cp -R docs $$dir/; \
		cp bin/man/*.1 $$dir/man/; \
		cp -R deploy/systemd deploy/sidecar deploy/compose deploy/grafana deploy/prometheus $$dir/deploy/; \
		tar -C dist/build --sort=name --owner=0 --group=0 --numeric-owner \
			--mtime=@$$(git log -1 --format=%ct 2>/dev/null || date +%s) -czf dist/$$name.tar.gz $$name; \
		mkdir -p dist/build/deb && cp $$dir/bottlecap dist/build/deb/bottlecap; \
		VERSION=$(VERSION) GOARCH=$$arch $(GOBIN)/nfpm package \
			--config deploy/package/nfpm.yaml --packager deb --target dist/; \
	done
	cd dist && sha256sum *.tar.gz *.deb > checksums.txt
	@host=$$($(GO) env GOARCH); tar -xzOf dist/bottlecap_$(DIST_VERSION)_linux_$$host.tar.gz \
		bottlecap_$(DIST_VERSION)_linux_$$host/bottlecap > dist/build/check && chmod +x dist/build/check && \
		dist/build/check version
	@ls -l dist

# test runs every test with the race detector. Docker integration tests skip
# when no engine answers unless BOTTLECAP_REQUIRE_DOCKER=1. The fleet's
# tests start their own Postgres from the postgresql package test-deps
# installs, so here they fail rather than skip without it.
test: export BOTTLECAP_REQUIRE_POSTGRES = 1
test: test-deps
	$(GO) mod download
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	BOTTLECAP_REQUIRE_MITMDUMP=1 python3 -m unittest discover -s integrations/mitmproxy
	$(MAKE) fuzz

# fuzz runs each fuzz target briefly (FUZZTIME inputs each): no input may make a
# provider parser panic or count a negative token, no request body may make
# the token estimator panic or answer 0 for a non-empty body, no body may
# state an output cap to the estimator below the one encoding/json reads,
# bottlecap's hand-written readers of reports and replies must agree with
# encoding/json, and the meter's cleaned request paths must leave an
# upstream nothing to fold.
# A count, not a duration: with a duration Go 1.26's fuzz coordinator can
# report "context deadline exceeded" as a failure when the time runs out
# while a worker is mid-input on a loaded machine (go.dev/issue/75804, fixed
# in Go 1.27); a count has no deadline to race. 50,000 inputs take 1 to 10 s
# a target here.
FUZZTIME ?= 50000x
FUZZ_TARGETS := $(addprefix ./meter/usage:,FuzzParserOpenAIChat FuzzParserOpenAIResponses FuzzParserAnthropic FuzzParserGemini FuzzParserAuto) \
	$(addprefix ./api:,FuzzDecodeReportFast FuzzDecodeIngestReplyFast FuzzDecodeVerdictFast) \
	./meter/estimate:FuzzInput ./meter/estimate:FuzzOutputCap ./meter:FuzzCleanPath
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		$(GO) test -run='^$$' -fuzz="^$${t#*:}$$" -fuzztime=$(FUZZTIME) $${t%%:*} || exit 1; \
	done

# test-deps installs the Debian packages the tests drive (tmux for the
# dashboard smoke test, mitmproxy for the addon's tests through the real
# mitmdump, postgresql for the fleet's tests, which run its initdb and
# postgres from /usr/lib/postgresql/<version>/bin, bash-completion for the
# test of the completion script) when they are missing.
test-deps:
	@test -f /usr/share/bash-completion/bash_completion || { echo "installing bash-completion for the completion test"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq bash-completion >/dev/null; }
	@command -v tmux >/dev/null 2>&1 || { echo "installing tmux for the dashboard smoke test"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq tmux >/dev/null; }
	@command -v python3 >/dev/null 2>&1 || { echo "installing python3 for the mitmproxy addon tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3 >/dev/null; }
	@command -v mitmdump >/dev/null 2>&1 || { echo "installing mitmproxy for the mitmproxy addon tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mitmproxy >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "installing postgresql for the fleet's tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql >/dev/null; }

# sidecar-image builds the meter's sidecar image (deploy/sidecar/Dockerfile)
# from a static binary; sidecar-context only lays out its build context
# (the Dockerfile and the binary) in SIDECAR_CONTEXT, for a build elsewhere.
SIDECAR_CONTEXT ?= dist/sidecar
SIDECAR_IMAGE   ?= bottlecap-meter:$(VERSION)
sidecar-context:
	mkdir -p $(SIDECAR_CONTEXT)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(SIDECAR_CONTEXT)/bottlecap ./cmd/bottlecap
	cp deploy/sidecar/Dockerfile $(SIDECAR_CONTEXT)/Dockerfile

sidecar-image: sidecar-context
	docker build -t $(SIDECAR_IMAGE) -t bottlecap-meter:latest $(SIDECAR_CONTEXT)

$(GOBIN)/nfpm:
	GOBIN=$(GOBIN) $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)

$(GOBIN)/staticcheck:
	GOBIN=$(GOBIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(GOBIN)/staticcheck
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GOBIN)/staticcheck ./...

# bench prints every figure of SPEC section 10 as `bench: <name> <value> <unit>`.
bench:
	$(GO) run ./cmd/bench

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin .bin dist
