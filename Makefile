# meshdemo: one Makefile, parts in build/make/*.mk (each appends its test target to TEST_TARGETS).
SHELL := /bin/bash
export GOTOOLCHAIN := local
GO ?= go
BIN := $(CURDIR)/bin
# The workloads as deploy/matrix declares them, asked once per make run and only when used.
WORKLOADS = $(eval WORKLOADS := $(shell cd deploy/matrix && GOWORK=off $(GO) run ./cmd/matrix workloads))$(WORKLOADS)
TEST_TARGETS := test-services
# A CLI's build rule: waits for the same build running in the background (make prebuild) instead
# of compiling it twice, and skips it if that one left the binary fresh.
BUILD_ONCE = $(CURDIR)/build/make/build-once.sh $@ $(abspath $^) --

include $(sort $(wildcard build/make/*.mk))

.DEFAULT_GOAL := help
.PHONY: help test test-services build run bench

help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

# grpcnotrace keeps gRPC (pulled in by the OTLP exporter) from linking html/template,
# which disables dead-code elimination: 12 MB binaries instead of 15.5 MB.
# nopgxregisterdefaulttypes drops pgx's registration of generic type variants that
# user-service does not use: its stripped binary 16.7 MB -> 15.2 MB.
GO_TAGS := grpcnotrace,nopgxregisterdefaulttypes
# go vet compiles every dependency first; with the flags `make build` and the images use, that
# compile is the one they reuse (on a cold cache, plain `go vet` cost a second full compile of the
# services' dependencies: 4 min 22 s against 52 s, measured on this machine).
SERVICES_VET = CGO_ENABLED=0 $(GO) vet -trimpath -tags $(GO_TAGS) ./...
build: ## build the four workloads into ./bin
	@mkdir -p $(BIN)
	cd services && for w in $(WORKLOADS); do CGO_ENABLED=0 $(GO) build -trimpath -tags $(GO_TAGS) -o $(BIN)/$$w ./$$w || exit 1; done

test: prefetch prebuild $(TEST_TARGETS) ## run every test (what CI runs)

# The tests run beside a throw-away PostgreSQL (build/postgres/with-postgres.sh:
# initdb + pg_ctl on a free loopback port, stopped and deleted on exit), whose URL
# they read from MESHDEMO_TEST_DATABASE_URL.
test-services: ## vet, gofmt, and race-enabled tests of the services module (with a throw-away PostgreSQL)
	cd services && test -z "$$(gofmt -l .)" || { gofmt -l services; echo 'gofmt needed'; exit 1; }
	cd services && $(SERVICES_VET)
	cd services && ../build/postgres/with-postgres.sh $(GO) test -race -count=1 -tags $(GO_TAGS) ./...

run: build ## run the four workloads locally on 127.0.0.1 (client on :8080); Ctrl-C stops them
	build/run-local.sh
