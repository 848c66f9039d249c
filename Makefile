# farmlb — see README.md. Every target installs what it needs.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
FUZZTIME ?= 5s
# Every main under cmd/.
CMDS := $(notdir $(wildcard cmd/*))

.PHONY: all build test vet lint fmt fuzz-short stress-test run bench-select deps clean help

all: build

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

deps: ## install the Debian packages and Go modules the build and tests need
	@scripts/deps.sh
	@$(GO) mod download

build: ## build every binary into bin/
	@mkdir -p bin
	$(GO) build -trimpath -o bin/ $(addprefix ./cmd/,$(CMDS))

vet:
	$(GO) vet ./...

lint: vet ## gofmt and go vet (and staticcheck)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

test: deps vet build ## go vet, every test with -race, and a short run of every fuzz target
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) test -race -count=1 -timeout 20m ./...
	@FUZZTIME=$(FUZZTIME) scripts/fuzz-short.sh

stress-test: deps build ## the tests RUNS=8 times under HOGS=3 CPU hogs, to find timing faults (20+ minutes)
	@scripts/stress-test.sh

fuzz-short: ## run every fuzz target for FUZZTIME (default 5s)
	@FUZZTIME=$(FUZZTIME) scripts/fuzz-short.sh

run: build ## a whole farm on loopback, no root, no config (make run ARGS=--help lists its flags)
	@scripts/deps.sh run
	@scripts/run.sh $(ARGS)

bench-select: ## the balance benchmark of the selection policies
	$(GO) run ./farm/bench/selectsim

clean:
	rm -rf bin build

# Each component adds its own targets in mk/<component>.mk.
-include mk/*.mk
