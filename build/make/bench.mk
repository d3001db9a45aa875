# make bench: the real chain against a minimal net/http chain on loopback, to price what the
# kit adds per hop (docs/benchmark.md). A benchmark, not a test: it is deliberately not in
# TEST_TARGETS, it prints PASS/MISS per target and exits 0 either way. Extra flags:
# BENCH_FLAGS='-c 64 -d 20s' (see `cd services && go run ./bench -h`).
BENCH_FLAGS ?=

.PHONY: bench bench-users
bench: build bench-users ## benchmark the chain against a minimal net/http chain, then the gRPC chain against minimal grpc-go hops, then user-service on PostgreSQL
	cd services && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/bench-minimal ./bench/minimal
	cd services && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/bench ./bench
	$(BIN)/bench -bin $(BIN) $(BENCH_FLAGS)
	$(BIN)/bench -grpc -bin $(BIN) $(BENCH_FLAGS)

# make bench-users: user-service on a throw-away PostgreSQL (build/postgres/with-postgres.sh):
# GET by id p99 at 10^6 vs 10^3 rows, a page of 100 at both sizes, and user-service vs a
# bare pgx handler running the same query. Prints figures and PASS/MISS; exits 0 either
# way. Extra flags: BENCH_USERS_FLAGS='-d 10s -c 32' (see `-h`).
BENCH_USERS_FLAGS ?=
bench-users: build ## benchmark user-service on PostgreSQL (10^3 vs 10^6 rows; vs a bare pgx handler)
	cd services && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/bench-users ./bench/users
	build/postgres/with-postgres.sh $(BIN)/bench-users -bin $(BIN) $(BENCH_USERS_FLAGS)
