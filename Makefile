# The two commands of the README: `make dev` runs the platform with its demo
# tenants, `make test` runs every test. Both bring the local stack up first.
SHELL := /bin/bash
GO ?= go
STACK := deploy/dev/stack
TOOLS := $(CURDIR)/.dev/tools/bin
STATICCHECK_VERSION := v0.8.2
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build dev test lint bench stack-up stack-down fmt

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/swa ./cmd/swa

stack-up:
	$(STACK) up

stack-down:
	$(STACK) down

dev: build stack-up
	eval "$$($(STACK) env)" && exec ./bin/swa dev

test: stack-up
	eval "$$($(STACK) env)" && $(GO) test -race -count=1 -timeout 15m ./...

bench: stack-up
	eval "$$($(STACK) env)" && SWA_RATE_LIMITS=off $(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout 30m ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@test -x $(TOOLS)/staticcheck || GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(TOOLS)/staticcheck ./...
