# map646: the README's two commands are `make lab` and `make test`.
# Every target installs what it needs by itself (Go modules through the
# module proxy; Debian packages where a target needs them).

GO      ?= go
BIN     := bin/map646
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 20s

.PHONY: all build test lab bench microbench fuzz vet clean

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

# The lab: validate the example config, then run the real binary in network
# namespaces (client4 -- map646 -- server6, each device back-end) and show
# what it checks. Needs root; installs what it needs with apt-get.
lab: build
	./$(BIN) check -config config/example.toml
	$(GO) test -count=1 -v -run 'TestLab' ./lab/

# The paper's evaluation side by side, as root (about 8 minutes; not part of
# `make test`): kernel IPv4 and IPv6 forwarding, map646 (offload and plain
# "water" device) and TAYGA in network namespaces, ping and iperf3, median
# of 3 interleaved runs; and Figure 12, table lookups from 1k to 1M entries.
# Writes bench-results/results.md, runs.csv and PNG charts; installs
# iperf3, tayga, ethtool and iputils-ping if missing. BENCHFLAGS adds flags
# (go run ./lab/bench -help).
bench:
	$(GO) run ./lab/bench -out bench-results $(BENCHFLAGS)

# Go micro-benchmarks: translation per protocol and direction, table
# lookups from 1k to 1M entries.
microbench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=1s ./translator/

# Fuzz each direction of the translator for FUZZTIME (default 20s).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate4$$' -fuzztime $(FUZZTIME) ./translator/
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate6$$' -fuzztime $(FUZZTIME) ./translator/

clean:
	rm -rf bin
