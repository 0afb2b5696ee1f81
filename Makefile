# The two commands a newcomer needs are `make run` and `make test` (README.md).
GO     ?= go
BIN    := bin/convox

.PHONY: build run test images tools lint unit gotest bench bench-short

build:
	$(GO) build -o $(BIN) .

# Start the rack daemon in the foreground on 127.0.0.1:5443.
run: build
	./$(BIN) rack start

# Test images are built locally (no registry is reachable on CI machines).
images:
	testdata/images/build

# Test-only tools: pebble, a local ACME server for the router's ACME test.
tools:
	@command -v pebble >/dev/null 2>&1 || test -x "$$($(GO) env GOPATH)/bin/pebble" || \
		$(GO) install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3

# Everything: unit tests, the end-to-end tests through the real binary
# against the real Docker engine, then the benchmarks in their short mode.
test: images tools lint gotest bench-short

# The router's tests run through its event-loop front end (router.Front) by
# default; the second run serves them with net/http alone, the path HTTPS
# and handed-over connections take. The balancer's run on one event loop
# per two CPUs, one on CI's machine; the third run gives them three, which
# share every listening socket.
gotest:
	$(GO) test -count=1 -timeout 25m ./...
	ROUTER_TEST_SERVER=net/http $(GO) test -count=1 ./router
	BALANCER_TEST_LOOPS=3 $(GO) test -count=1 ./balancer

# Benchmarks against their baselines (plain docker, nginx, haproxy, docker
# logs); results and how to read them in BENCHMARKS.md. The router and
# balancer scripts install nginx, wrk and haproxy from Debian if missing.
bench:
	$(GO) run ./bench/deploy -n 5
	$(GO) run ./bench/logs
	bash bench/router/run.sh
	bash bench/balancer/run.sh

bench-short:
	$(GO) run ./bench/deploy -short
	$(GO) run ./bench/logs -short
	bash bench/router/run.sh -short
	bash bench/balancer/run.sh -short

# Unit tests only: no Docker needed.
unit:
	$(GO) test -count=1 -short ./...

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
