# make bench: the real chain against a minimal net/http chain on loopback (issue 2,
# "Performance"). A benchmark, not a test: it is deliberately not in TEST_TARGETS, it
# prints PASS/MISS per target and exits 0 either way. Extra flags: BENCH_FLAGS='-c 64 -d 20s'
# (see `cd services && go run ./internal/bench -h`).
BENCH_FLAGS ?=

.PHONY: bench
bench: build ## benchmark the chain against a minimal net/http chain, then the gRPC chain against minimal grpc-go hops (req/s, p50/p99, CPU, RSS, ready time)
	cd services && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/bench-minimal ./internal/bench/minimal
	cd services && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/bench ./internal/bench
	$(BIN)/bench -bin $(BIN) $(BENCH_FLAGS)
	$(BIN)/bench -grpc -bin $(BIN) $(BENCH_FLAGS)
