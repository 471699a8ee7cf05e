# nodeexec. `make run` sets up and runs the service (embedded database, 127.0.0.1:8080).
# `make test-all` is the one command that runs every test (it brings up real test hosts: run it as root).
# `make demo` sets up test hosts and deploys a demo service with nodeexec.
GO        ?= go
HOSTS     ?= 3
BENCH_HOSTS ?= 10
export PATH := $(PATH):/usr/local/go/bin

.PHONY: build run test e2e test-all bench bench-api bench-smoke demo hosts-up hosts-down kube-up kube-down pg-up pg-down deps lint clean

# What `nodeexec version` and GET /api/v1/version report: the nearest tag and commit ("-dirty" with
# changes not committed); the commit and its date too, for builds the Go toolchain records no VCS
# information in (-buildvcs=false, a git worktree).
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null)
BUILDINFO := github.com/nodeexec/nodeexec/internal/buildinfo
LDFLAGS   := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(shell git rev-parse HEAD 2>/dev/null) \
	-X $(BUILDINFO).buildDate=$(shell git log -1 --format=%cI 2>/dev/null)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/nodeexec ./cmd/nodeexec

deps:
	hack/deps

# The service, in the foreground: the embedded database keeps its data in /var/lib/nodeexec (as root).
run: deps build
	bin/nodeexec serve $(SERVE_FLAGS)

# Fast tests: no test hosts (the Ansible ones run locally with connection=local), then the roles' Python
# modules (roles/*/tests: stdlib unittest; Ansible never loads a role's tests/).
test:
	$(GO) test -count=1 ./...
	for d in roles/*/tests; do PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s $$d -p 'test_*.py' || exit 1; done

hosts-up:
	hack/testhosts up $(HOSTS)

hosts-down:
	hack/testhosts down

# A real Kubernetes control plane on loopback (built once, about 7 minutes, then cached).
kube-up:
	hack/kube up

kube-down:
	hack/kube down

# A throwaway PostgreSQL server on loopback (Debian's postgresql): the shared database of the replicas'
# tests, through FerretDB (docs/shared-database.md).
pg-up:
	hack/pg up

pg-down:
	hack/pg down

# End-to-end: real ansible-playbook over real SSH to real systemd hosts (and the web console in a real
# headless Chromium against them, cmd/nodeexec; NODEEXEC_UI_SCREENSHOTS=1 refreshes docs/console/); a real Kubernetes API server; a
# real PostgreSQL server (two serve processes on one shared database), on which the store's own tests
# then run again (NODEEXEC_TEST_STORE_PG_URL), with the engine's replica tests (several stores on one database).
# One package at a time (-p 1): the suites share the test hosts, and some take a host off the network.
e2e: hosts-up kube-up pg-up
	eval "$$(hack/kube env)" && eval "$$(hack/pg env)" && NODEEXEC_E2E=1 $(GO) test -p 1 -count=1 -timeout 45m -tags e2e -v -run . \
		./executor/ansible/ ./executor/k8s/ ./internal/testbed/ ./cmd/nodeexec/ ./server/ ./client/
	eval "$$(hack/pg env)" && NODEEXEC_TEST_STORE_PG_URL="$$NODEEXEC_TEST_PG_URL" $(GO) test -count=1 -timeout 10m -tags e2e -v -run . ./store/... && \
		NODEEXEC_TEST_STORE_PG_URL="$$NODEEXEC_TEST_PG_URL" $(GO) test -count=1 -timeout 5m -v -run 'Replica|MaxUnavailable' ./engine/

# One iteration of the smallest case keeps each benchmark working; `make bench` measures.
bench-smoke: hosts-up kube-up pg-up
	NODEEXEC_E2E=1 $(GO) test -tags e2e -run '^$$' -bench '^(BenchmarkDeploy|BenchmarkAPIvsReference)$$/^hosts=1$$' -benchtime 1x -timeout 20m ./bench/
	eval "$$(hack/kube env)" && $(GO) test -tags e2e -run '^$$' -bench 'K8sRollout/K=1$$/poll=1s$$' -benchtime 1x -timeout 10m ./bench/
	eval "$$(hack/pg env)" && NODEEXEC_E2E=1 $(GO) test -tags e2e -run '^$$' -bench '^BenchmarkReplicas$$' -benchtime 1x -timeout 10m ./bench/

test-all: lint test e2e bench-smoke

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e,occupancy ./...
	ansible-playbook --syntax-check -i inventory/example/hosts.yml playbooks/*.yml bench/reference/deploy.yml >/dev/null
	hack/redocly docs/openapi.yaml

bench:
	hack/testhosts up $(BENCH_HOSTS)
	hack/kube up
	hack/pg up
	eval "$$(hack/kube env)" && eval "$$(hack/pg env)" && NODEEXEC_E2E=1 $(GO) test -tags e2e -run '^$$' -bench . -benchtime 3x -timeout 150m ./bench/

# API reads under load on the embedded database: 10,000 nodes, 50 clients.
bench-api:
	$(GO) run ./bench/apiload

demo: deps build hosts-up
	hack/demo

clean:
	rm -rf bin
