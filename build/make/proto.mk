# gRPC code generation (services/proto). The generators are pinned in build/tools/proto
# (outside go.work): buf (a pure-Go protobuf compiler, no protoc download), protoc-gen-go
# and protoc-gen-go-grpc. Generated code is committed; `make proto-check` regenerates into
# a scratch copy and fails when the committed files differ. Neither target is in
# TEST_TARGETS: building buf takes minutes, which `make test` should not pay each run.
PROTO_TOOLS := $(BIN)/proto-tools

.PHONY: proto proto-check proto-tools

proto-tools: ## build the pinned buf, protoc-gen-go and protoc-gen-go-grpc into bin/proto-tools
	@mkdir -p $(PROTO_TOOLS)
	cd build/tools/proto && GOWORK=off $(GO) build -o $(PROTO_TOOLS)/ \
		github.com/bufbuild/buf/cmd/buf google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

proto: proto-tools ## regenerate the gRPC code in services/proto from its .proto files
	cd services/proto && PATH=$(PROTO_TOOLS):$$PATH buf lint && PATH=$(PROTO_TOOLS):$$PATH buf generate

proto-check: proto-tools ## fail when the committed generated code differs from what the pinned generators produce
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -r services/proto/. "$$tmp/" && \
	find "$$tmp" -name '*.pb.go' -delete && \
	(cd "$$tmp" && PATH=$(PROTO_TOOLS):$$PATH buf generate) && \
	diff -r -x '*.proto' -x '*.yaml' services/proto "$$tmp" && echo "proto-check: generated code is up to date"
