# The two commands of the README: `make dev` runs the platform with its demo
# tenants, `make test` runs every test. Both bring the local stack up first.
SHELL := /bin/bash
GO ?= go
STACK := deploy/dev/stack
TOOLS := $(CURDIR)/.dev/tools/bin
STATICCHECK_VERSION := v0.8.2
ACTIONLINT_VERSION := v1.7.12
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
# Every timestamp of the image is the commit's time: one commit, one digest.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# Go modules of their own under deploy/, so the main module never carries
# the image builder's, Helm's or the CDK's dependencies.
DEPLOY_MODULES := deploy/image deploy/helm deploy/aws

.PHONY: all build dev test test-deploy fuzz lint bench soak stack-up stack-up-both stack-down fmt image

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/swa ./cmd/swa

# The OCI image without Docker (deploy/image): bin/swa-image.tar, its SPDX
# SBOM and its manifest digest.
image:
	cd deploy/image && SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run . -src ../.. \
		-binary ../../bin/swa-linux-amd64 -version $(VERSION) -revision "$(REVISION)" \
		-out ../../bin/swa-image.tar -sbom ../../bin/swa-image.spdx.json -digest-file ../../bin/swa-image.digest

stack-up:
	$(STACK) up

# The tests also move tenants between two database servers.
stack-up-both:
	$(STACK) up --second-postgres

stack-down:
	$(STACK) down

dev: build stack-up
	eval "$$($(STACK) env)" && exec ./bin/swa dev

# The deploy modules' tests are mostly compiling, the main module's mostly
# waiting on the stack and the browser: run side by side, the deploy
# modules' output is printed after the main module's, and either failing
# fails the target.
test: stack-up-both
	@deploy=$$(mktemp -d); trap 'rm -rf "$$deploy"' EXIT; \
	( $(MAKE) --no-print-directory test-deploy > "$$deploy/out" 2>&1; echo $$? > "$$deploy/rc" ) & \
	eval "$$($(STACK) env)" && $(GO) test -race -count=1 -timeout 20m ./...; main=$$?; \
	wait; cat "$$deploy/out"; [ "$$main" = 0 ] && [ "$$(cat "$$deploy/rc")" = 0 ]

# The deploy modules' tests need no stack: the image builder, the Helm chart
# rendered offline and the CDK app synthesised in-process.
test-deploy:
	@set -e; for m in $(DEPLOY_MODULES); do echo "== $$m"; (cd $$m && $(GO) test -count=1 -timeout 20m ./...); done

# Each fuzz target of FUZZ_PKGS (directories ending in /) runs for FUZZTIME
# against the local stack, from one instrumented test binary per package,
# starting each time from the seeds alone (a corpus grown by earlier runs
# would make the baseline outlast FUZZTIME); plain `make test` already runs
# the full seed corpora.
FUZZ_PKGS ?= ./tenant/account/ ./tenant/shop/ ./tenant/admin/
FUZZTIME ?= 4s
fuzz: stack-up
	@eval "$$($(STACK) env)" && set -e && bin=$$(mktemp -d) && trap 'rm -rf "$$bin"' EXIT && \
	for pkg in $(FUZZ_PKGS); do \
		$(GO) test -c -fuzz . -o "$$bin/fuzz.test" $$pkg; \
		for target in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$pkg*_test.go | cut -c6-); do \
			echo "== $$pkg $$target"; \
			if ! (cd $$pkg && "$$bin/fuzz.test" -test.run '^$$' -test.fuzz "^$$target\$$" -test.fuzztime $(FUZZTIME) \
				-test.parallel 1 -test.fuzzcachedir "$$bin/corpus") > "$$bin/out" 2>&1; then \
				cat "$$bin/out"; \
				if grep -q 'Failing input written' "$$bin/out" || \
					[ "$$(grep -A2 -- '--- FAIL' "$$bin/out" | sed -n 2,3p | tr -d ' ')" != "$$(printf 'contextdeadlineexceeded\nFAIL')" ]; then \
					exit 1; \
				fi; \
				echo "(the engine's own deadline report, a race at -fuzztime's end: not a finding)"; \
			else tail -n 2 "$$bin/out"; fi; \
		done; \
	done

# Every benchmark but the soak, then one row per figure measured beside its
# reference in the same run (bench/summary.awk); the full output is kept in
# bin/bench.txt.
bench: stack-up
	@mkdir -p bin
	eval "$$($(STACK) env)" && set -o pipefail && SWA_RATE_LIMITS=off $(GO) test -run '^$$' -bench . -skip Soak \
		-benchmem -count=1 -timeout 30m ./... | tee bin/bench.txt
	@awk -f bench/summary.awk bin/bench.txt

# The soak run (BenchmarkSoak): 50 tenants for SOAK_DURATION after a warm-up.
SOAK_DURATION ?= 10m
soak: stack-up
	eval "$$($(STACK) env)" && SWA_RATE_LIMITS=off $(GO) test ./bench -run '^$$' -bench Soak -benchtime 1x \
		-soak.duration $(SOAK_DURATION) -timeout 60m

fmt:
	gofmt -w $$(git ls-files '*.go')

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@test -x $(TOOLS)/staticcheck || GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(TOOLS)/staticcheck ./...
	@set -e; for m in $(DEPLOY_MODULES); do echo "== $$m"; (cd $$m && $(GO) vet ./... && $(TOOLS)/staticcheck ./...); done
	@# shellcheck (apt) checks the repository's scripts, and actionlint runs it on every workflow's run: blocks.
	@command -v shellcheck >/dev/null || { s=; [ "$$(id -u)" = 0 ] || s=sudo; \
		$$s apt-get install -y -qq shellcheck >/dev/null 2>&1 || { $$s apt-get update -qq && $$s apt-get install -y -qq shellcheck; }; }
	shellcheck deploy/dev/stack .ci/run deploy/compose/initdb/*.sh
	@test -x $(TOOLS)/actionlint || GOBIN=$(TOOLS) $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	$(TOOLS)/actionlint
