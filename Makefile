# map646: the README's two commands are `make lab` and `make test`.
# Every target installs what it needs by itself (Go modules through the
# module proxy; Debian packages where a target needs them).

GO      ?= go
BIN     := bin/map646
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 20s

.PHONY: all build test lab bench fuzz vet clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/map646

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

# Every test: unit, golden (CONFORMANCE.md rows), config, CLI, and the
# committed fuzz corpora as regression seeds.
test: vet
	$(GO) test -count=1 ./...

# The lab. For now: build the binary and validate the example config; the
# namespace lab arrives with the data plane.
lab: build
	./$(BIN) check -config config/example.toml

# Benchmarks: translation per protocol and direction, table lookups from 1k
# to 1M entries.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=1s ./translator/

# Fuzz each direction of the translator for FUZZTIME (default 20s).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate4$$' -fuzztime $(FUZZTIME) ./translator/
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate6$$' -fuzztime $(FUZZTIME) ./translator/

clean:
	rm -rf bin
