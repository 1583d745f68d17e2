# bottlecap — see README.md. Every target installs what it needs.
GO        ?= go
GOBIN     := $(CURDIR)/.bin
STATICCHECK_VERSION := v0.8.2
export BOT_BOTTLE_HOME ?= $(HOME)/.bot-bottle

.PHONY: run build test test-deps fuzz lint bench fmt clean

# SUDO is empty for root (CI, the dev machines) and sudo for everyone else.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# run builds the binary and starts the daemon in the foreground with the
# embedded defaults (no settings file needed).
run: build
	./bin/bottlecap serve

build:
	$(GO) build -o bin/bottlecap ./cmd/bottlecap

# test runs every test with the race detector. Docker integration tests skip
# when no engine answers unless BOTTLECAP_REQUIRE_DOCKER=1.
test: test-deps
	$(GO) mod download
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	BOTTLECAP_REQUIRE_MITMDUMP=1 python3 -m unittest discover -s integrations/mitmproxy
	$(MAKE) fuzz

# fuzz runs each fuzz target briefly (FUZZTIME each): no input may make a
# provider parser panic or count a negative token, no request body may make
# the token estimator panic or answer 0 for a non-empty body, and
# bottlecap's hand-written readers of reports and replies must agree with
# encoding/json.
FUZZTIME ?= 3s
FUZZ_TARGETS := $(addprefix ./meter/usage:,FuzzParserOpenAIChat FuzzParserOpenAIResponses FuzzParserAnthropic FuzzParserGemini FuzzParserAuto) \
	$(addprefix ./api:,FuzzDecodeReportFast FuzzDecodeIngestReplyFast FuzzDecodeVerdictFast) \
	./meter/estimate:FuzzInput
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		$(GO) test -run='^$$' -fuzz="^$${t#*:}$$" -fuzztime=$(FUZZTIME) $${t%%:*} || exit 1; \
	done

# test-deps installs the Debian packages the tests drive (tmux for the
# dashboard smoke test, mitmproxy for the addon's tests through the real
# mitmdump) when they are missing.
test-deps:
	@command -v tmux >/dev/null 2>&1 || { echo "installing tmux for the dashboard smoke test"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq tmux >/dev/null; }
	@command -v python3 >/dev/null 2>&1 || { echo "installing python3 for the mitmproxy addon tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3 >/dev/null; }
	@command -v mitmdump >/dev/null 2>&1 || { echo "installing mitmproxy for the mitmproxy addon tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mitmproxy >/dev/null; }

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
	rm -rf bin .bin
