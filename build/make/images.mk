# Container images, docker compose and the container tests.
# Included by the root Makefile; WORKLOADS, GO and TEST_TARGETS come from there.

IMAGE_REPO ?= meshdemo
IMAGE_TAG ?= dev
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)
CONTAINER_TEST_TIMEOUT ?= 20m

TEST_TARGETS += test-containers

# buildx (the default `docker build` since Engine 23) attaches a provenance attestation to every
# image it builds with Docker's containerd image store; `kind load docker-image` then fails on
# the attestation's manifest, which `docker save` leaves out (kind issue 3795). Every image this
# Makefile builds (workloads, loadtest) is built without it; the variable means nothing to a
# docker CLI without buildx. skaffold.yaml passes --provenance=false itself.
export BUILDX_NO_DEFAULT_ATTESTATIONS := 1

.PHONY: docker-engine images images-multistage compose-config compose-up compose-down compose-grpc-demo test-containers

docker-engine: ## make sure a Docker engine answers (installs Debian's docker.io and starts dockerd when root)
	build/docker/ensure-docker.sh

images: docker-engine ## build meshdemo/<workload>:dev for the four workloads, no registry pull (host-built binaries)
	IMAGE_REPO=$(IMAGE_REPO) IMAGE_TAG=$(IMAGE_TAG) GO=$(GO) build/docker/build-images.sh $(WORKLOADS)

images-multistage: ## build the four images with the self-contained multi-stage path (needs registry access + BuildKit)
	for w in $(WORKLOADS); do \
		DOCKER_BUILDKIT=1 docker build -f build/Dockerfile --build-arg WORKLOAD=$$w -t $(IMAGE_REPO)/$$w:$(IMAGE_TAG) . || exit 1; \
	done

compose-config: ## validate compose.yaml, with and without the observability profile, and with compose.postgres.yaml; and the gRPC demo file
	$(COMPOSE) -f compose.yaml config -q
	$(COMPOSE) -f compose.yaml --profile observability config -q
	$(COMPOSE) -f compose.yaml -f compose.postgres.yaml config -q
	$(COMPOSE) -f $(GRPC_DEMO_FILE) config -q

compose-up: images ## start the four workloads with docker compose (client on http://127.0.0.1:8080)
	$(COMPOSE) -f compose.yaml up -d
	@echo 'try: curl -i http://127.0.0.1:8080/client/server1'

compose-down: ## stop and remove the compose stack
	$(COMPOSE) -f compose.yaml down --remove-orphans

# The "before" picture of gRPC balancing without a mesh (docs/grpc.md): client, three server1
# replicas behind Docker's DNS, server2; only client's HTTP port, on 127.0.0.1:$(GRPC_DEMO_PORT).
GRPC_DEMO_FILE := build/compose/grpc-balancing.yaml
GRPC_DEMO_PROJECT ?= meshdemo-grpcdemo
GRPC_DEMO_PORT ?= 8090
GRPC_DEMO_CALLS ?= 200

compose-grpc-demo: images ## gRPC pinned to one server1 replica, HTTP spread as concurrency rises: compose up, count per replica, down
	@demo="$(COMPOSE) -p $(GRPC_DEMO_PROJECT) -f $(GRPC_DEMO_FILE)"; \
	export MESHDEMO_GRPCDEMO_PORT=$(GRPC_DEMO_PORT) MESHDEMO_IMAGE_TAG=$(IMAGE_TAG); \
	trap "echo '--- $(GRPC_DEMO_PROJECT): compose down'; $$demo down --remove-orphans -t 5 >/dev/null 2>&1" EXIT; \
	$$demo up -d --scale server1=3 || exit 1; \
	(cd e2e && $(GO) run ./cmd/grpc-balancing-demo -url http://127.0.0.1:$(GRPC_DEMO_PORT) -n $(GRPC_DEMO_CALLS))

# The container tests build their own images from build/Dockerfile.prebuilt; `images` runs first so
# that the CLI path (`make images`) is proven here too. Without an engine the tests skip,
# loudly; under CI=true that skip fails the run unless MESHDEMO_ALLOW_NO_DOCKER=1.
test-containers: ## vet + race tests of e2e/containers against real containers (starts Docker if needed)
	@if build/docker/ensure-docker.sh; then \
		$(MAKE) --no-print-directory images || exit 1; \
	else \
		echo '!!! test-containers: NO DOCKER ENGINE could be started; the container tests will SKIP (CI fails this).' >&2; \
	fi
	cd e2e && test -z "$$(gofmt -l containers internal cmd)" || { gofmt -l containers internal cmd; echo 'gofmt needed'; exit 1; }
	cd e2e && $(GO) vet ./containers/... ./internal/... ./cmd/...
	cd e2e && TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 \
		$(GO) test -race -count=1 -timeout $(CONTAINER_TEST_TIMEOUT) -v ./internal/... ./containers/...
