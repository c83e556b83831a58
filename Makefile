# drflow: the two commands people run are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
GO    ?= go
PKGS  ?= ./...

.PHONY: demo test tools services vet fmt-check lint unit build fuzz bench bench-compare chaos load clean

## demo: drflow on this machine — the Temporal dev server with its Web UI, one worker, the
## schedules, a backup and a restore drill (scripts/demo.sh); Ctrl-C stops it all.
demo:
	bash scripts/demo.sh

## test: everything CI runs — installs the emulators it needs, checks formatting, vet and
## lint, then runs the whole suite with the race detector against real servers.
## The Web UI test keeps its screenshots in var/screenshots.
test: tools services fmt-check vet lint
	DRFLOW_SCREENSHOT_DIR=$(CURDIR)/var/screenshots $(GO) test -race -count=1 -timeout 30m $(PKGS)

## tools: install (once) the pinned MinIO, fake-gcs-server, Azurite, Temporal CLI and
## golangci-lint into .tools/.
## Chromium and chromedriver (Debian packages) drive the Web UI test.
tools:
	bash scripts/tools.sh all
	bash scripts/chromium.sh >/dev/null

## services: make sure PostgreSQL answers on 127.0.0.1:5432 (starts or installs it).
services:
	bash scripts/postgres.sh

fmt-check:
	@out=$$(find . -name '*.go' -not -path './.tools/*' -not -path './var/*' -print0 | xargs -0 gofmt -l); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## lint: golangci-lint (pinned in scripts/tools.sh) with .golangci.yml: the standard linters,
## funlen 100 and gocyclo 15. Each exception is a //nolint line that says why.
lint:
	$$(bash scripts/tools.sh golangci-lint) run $(PKGS)

build:
	$(GO) build $(PKGS)

## fuzz: run each fuzz target for FUZZTIME (default 60s).
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzManifestDecode$$' -fuzztime $(FUZZTIME) ./internal/repo/
	$(GO) test -run '^$$' -fuzz '^FuzzPackIndexDecode$$' -fuzztime $(FUZZTIME) ./internal/repo/
	$(GO) test -run '^$$' -fuzz '^FuzzBlobDecode$$' -fuzztime $(FUZZTIME) ./internal/repo/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./runbooks/

## bench: the data-path benchmark on a generated dataset of BENCHSIZE (default 2GiB).
BENCHSIZE ?= 2GiB
bench:
	$(GO) run ./starter bench --size $(BENCHSIZE)

## bench-compare: drflow (backup through Temporal, drflow restore) against restic and kopia on
## the same real tree: DIR=path, or a copy of the Go module cache capped at CAP_MB (1024).
bench-compare: tools
	bash scripts/bench-compare.sh

## chaos: every fault-injection trial family of internal/chaos at its full count (crash,
## storage, corruption, temporal) with a new seed unless SEED=N is given, then one summary line
## per family (kept in var/chaos/summary.txt). `make test` runs a few trials of each, seed 1.
SEED ?= $(shell date +%s)
chaos: tools
	@mkdir -p var/chaos && rm -f var/chaos/summary.txt
	@DRFLOW_CHAOS_FULL=1 DRFLOW_CHAOS_SEED=$(SEED) DRFLOW_CHAOS_REPORT=$(CURDIR)/var/chaos/summary.txt \
		$(GO) test -count=1 -timeout 90m -run '^TestChaos' ./internal/chaos/; status=$$?; \
	echo "== chaos summary (seed $(SEED)) =="; cat var/chaos/summary.txt 2>/dev/null; exit $$status

## load: DATASETS (default 200) tier-1 datasets of small directories, each backed up every
## minute by its Temporal Schedule, on one drflow-worker and the dev server for DURATION
## (default 10m); prints missed and late schedule actions, worst RPO, worker CPU and memory, and
## task latency. Pass worker flags with LOADARGS="-worker-arg=--workflow-pollers=8".
DATASETS ?= 200
DURATION ?= 10m
load: tools
	$(GO) run ./internal/loadtest/cmd/loadtest -datasets $(DATASETS) -duration $(DURATION) $(LOADARGS)

clean:
	rm -rf .tools var
