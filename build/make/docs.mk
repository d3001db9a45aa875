# The docs check (build/doccheck, its own small module outside go.work, with goldmark and
# mvdan.cc/sh): every relative link and #anchor in README.md, docs/*.md and
# istio/sidecar/components/README.md resolves, and every `make X` they name has a rule in make's own
# database. The metrics table of docs/workloads.md is checked in services/ (test-services). Its
# package workflows/ is the policy of .github, tested by test-workflows (build/make/workflows.mk).
TEST_TARGETS += test-docs

DOCCHECK_GO := cd build/doccheck && GOWORK=off $(GO)

.PHONY: test-docs

test-docs: ## links, anchors and make targets named in README.md and docs/ (build/doccheck)
	@out="$$(cd build/doccheck && gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed in build/doccheck: $$out"; exit 1; fi
	$(DOCCHECK_GO) vet .
	$(DOCCHECK_GO) test -race -count=1 .
