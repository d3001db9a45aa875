# loadtest: the canary-aware load generator (loadtest/ module).
# Its targets run with GOWORK=off: loadtest/go.mod (with its replace of ../services)
# is complete on its own, so these targets do not depend on the other modules' state.
TEST_TARGETS += test-loadtest

LOADTEST_GO := cd loadtest && GOWORK=off $(GO)
LOADTEST_IMAGE ?= meshdemo/loadtest:dev
BENCH_LOADTEST_FLAGS ?= --concurrency 32 --duration 3s --rounds 5

WATCH_UI ?= 127.0.0.1:8089
WATCH_URL ?= http://127.0.0.1:8080/client/server1
WATCH_FLAGS ?= --rate 50

.PHONY: loadtest test-loadtest bench-loadtest loadtest-image watch

loadtest: ## build the load generator into bin/loadtest (static binary)
	@mkdir -p $(BIN)
	$(LOADTEST_GO) build -trimpath -ldflags='-s -w' -o $(BIN)/loadtest ./cmd/loadtest
loadtest: export CGO_ENABLED := 0

test-loadtest: ## gofmt, vet and race-enabled tests of the loadtest module (installs chromium for the live page's browser test)
	@bash build/chromium/ensure-chromium.sh
	@out="$$(cd loadtest && gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed in loadtest/: $$out"; exit 1; fi
	$(LOADTEST_GO) vet ./...
	$(LOADTEST_GO) test -race -count=1 ./...

bench-loadtest: loadtest ## loadtest's rate vs wrk's (goal >= 0.6), with --ui vs without (goal >= 0.95), memory of a simulated day-long live run
	@command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(LOADTEST_GO) build -o $(BIN)/loadtest-bench ./cmd/loadtest-bench
	$(BIN)/loadtest-bench --loadtest $(BIN)/loadtest $(BENCH_LOADTEST_FLAGS)

watch: loadtest ## live page on http://$(WATCH_UI)/ sending load to make run's chain (start make run first); Ctrl-C stops
	$(BIN)/loadtest --ui $(WATCH_UI) $(WATCH_FLAGS) $(WATCH_URL)

# The build context is a two-file tar (Dockerfile + binary), not bin/ with every other tool in it.
loadtest-image: loadtest ## image meshdemo/loadtest:dev: FROM scratch + the host-built bin/loadtest
	tar -c -C loadtest Dockerfile -C $(BIN) loadtest | docker build -t $(LOADTEST_IMAGE) -
