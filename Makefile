# The two commands a newcomer needs are `make run` and `make test` (README.md).
GO     ?= go
BIN    := bin/convox

.PHONY: build run test images lint unit

build:
	$(GO) build -o $(BIN) .

# Start the rack daemon in the foreground on 127.0.0.1:5443.
run: build
	./$(BIN) rack start

# Test images are built locally (no registry is reachable on CI machines).
images:
	testdata/images/build

# Everything: unit tests, then the end-to-end tests through the real binary
# against the real Docker engine.
test: images lint
	$(GO) test -count=1 -timeout 25m ./...

# Unit tests only: no Docker needed.
unit:
	$(GO) test -count=1 -short ./...

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
