# map646: `make test` and `make lab` are described in lab/README.md.
# Every target installs what it needs by itself (Go modules through the
# module proxy; Debian packages where a target needs them).

# bash for pipefail (make test), which dash lacks.
SHELL   := /bin/bash
GO      ?= go
BIN     := bin/map646
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 20s

.PHONY: all build test lab bench soak microbench fuzz vet deb clean generate etcd1m iaas

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/map646

# The fast path's eBPF object and its Go bindings (translator/fastpath),
# rebuilt from xlat.c with bpf2go and Debian's clang; both are committed, so
# that `go build` never needs clang. TestObjectMatchesSource (in make test)
# fails when the committed files are not what the source compiles to.
# Installs clang, llvm (llvm-strip) and libbpf-dev if missing.
generate:
	@command -v clang >/dev/null && command -v llvm-strip >/dev/null && test -e /usr/include/bpf/bpf_helpers.h || \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang llvm libbpf-dev
	$(GO) generate ./translator/fastpath/

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

# Every test: a short fuzzing run of each direction of the translator and
# of the eBPF fast path against it (CIFUZZEXECS inputs each, about 10 s
# here; the fast path's as root), then unit, golden (CONFORMANCE.md rows), config, CLI,
# the committed fuzz corpora as regression seeds, and the labs (as root;
# under CI=true or MAP646_REQUIRE_LABS=1 a lab that cannot run fails).
# -p 1: one package at a time, so that the labs, which measure timings
# (BFD detection, drain without loss), never share the 2 CPUs with another lab.
# lab/testsum prints go test's usual output and ends with the line that
# counts packages and tests passed, failed and skipped (it lists the skipped
# ones); pipefail keeps go test's exit status.
#
# The fuzzing runs are counted in inputs, not seconds: with a duration, Go
# 1.26's fuzzing coordinator can fail a run that found nothing with a bare
# "context deadline exceeded" when the time runs out while a worker is busy
# (golang/go#75804, fixed in Go 1.27; it failed FuzzTranslate6 in CI once).
# A count has no deadline to race; a loaded machine only takes longer.
CIFUZZEXECS ?= 100000
CIFUZZEXECSFASTPATH ?= 15000
test: vet
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate4$$' -fuzztime $(CIFUZZEXECS)x ./translator/
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate6$$' -fuzztime $(CIFUZZEXECS)x ./translator/
	$(GO) test -run '^$$' -fuzz '^FuzzFastPath$$' -fuzztime $(CIFUZZEXECSFASTPATH)x -parallel 1 ./translator/
	$(GO) build -o bin/testsum ./lab/testsum
	set -o pipefail; $(GO) test -json -count=1 -p 1 -timeout 30m ./... | ./bin/testsum -label 'make test'

# The Debian package, bin/map646_VERSION_ARCH.deb (VERSION: git describe
# made a Debian version, 1.2.3+4.gabc1234-1): map646 built static and
# position-independent as /usr/sbin/map646, the systemd unit, the packaged
# configuration /etc/map646/map646.toml (a conffile), man pages map646(8)
# and map646.toml(5) generated from the binary's -h texts and
# config/example.toml, the bash completion generated from the same -h
# texts, and maintainer scripts that create the map646 system user. Needs
# dpkg-deb only (no debhelper). cmd/map646/package/mkdeb builds it;
# `make test` builds it too and checks it with lintian, man and the
# extracted binary (TestDeb).
deb:
	$(GO) run ./cmd/map646/package/mkdeb -version '$(VERSION)' -out bin

# The lab: validate the example config, then the paper's failover
# experiment (its Figure 4, extended) on the two-node lab, as root, in about
# 3 minutes: BIRD 2 routers (ECMP, GRACEFUL_SHUTDOWN filter, BFD) and
# two map646 nodes, tokyo and osaka; a probe every 100 ms through ECMP, a
# one-sided withdrawal by a health check, drain, undrain, silent death and
# revival; a TCP transfer that survives a silent death; the same death
# without BFD; a real Prometheus scraping both nodes with the shipped alert
# rules, whose alert for the silently dead node must fire (about 30 s
# more). Writes LABOUT (timeline.csv, one PNG per run, summary.md)
# and prints the summary; fails when a target is missed. Installs bird2
# and prometheus with apt-get if missing. Ctrl-C stops it and removes every namespace and
# process it started. The first lab's tests (TestLab) are in `make test`.
LABOUT ?= lab/failover/results
lab: build
	./$(BIN) check -config config/example.toml
	$(GO) build -o bin/failover ./lab/failover
	./bin/failover -full -map646 $(CURDIR)/$(BIN) -out $(LABOUT)

# The paper's evaluation side by side, as root (about 8 minutes; not part of
# `make test`): kernel IPv4 and IPv6 forwarding, map646 (offload device,
# plain "water" device, offload with busy polling) and TAYGA in network namespaces, ping and iperf3, median
# of 3 interleaved runs; and Figure 12, table lookups from 1k to 1M entries.
# Writes bench-results/results.md, runs.csv and PNG charts; installs
# iperf3, tayga, ethtool and iputils-ping if missing. BENCHFLAGS adds flags
# (go run ./lab/bench -help).
bench:
	$(GO) run ./lab/bench -out bench-results $(BENCHFLAGS)

# The soak (issue 6), as root, SOAKTIME long (default 10m): the two-node lab
# under ping both ways, SHA-256-checked TCP transfers and a numbered UDP
# stream, both nodes reloaded and one drained and undrained every minute;
# asserts flat memory, no goroutine or fd leak, nothing mistranslated and
# counters that add up (packets read = sent + counted drops). Writes
# lab/soak/results/report.md.
SOAKTIME ?= 10m
soak:
	$(GO) build -o bin/soak ./lab/soak
	nice -n 10 ./bin/soak -duration $(SOAKTIME) -out lab/soak/results

# Go micro-benchmarks: translation per protocol and direction, table
# lookups from 1k to 1M entries, building a 1M-entry table; MICROCOUNT runs
# of 1 s each. Writes the raw runs to lab/bench/results/microbench-runs.txt
# and their medians (benchstat) to lab/bench/results/microbench.txt, with
# the machine and its load average before and after (lab/README.md's tables
# are copied from it); MICROBENCHNOTE adds a line, e.g. what else ran.
MICROCOUNT ?= 5
MICROBENCHOUT ?= lab/bench/results
MICROBENCHNOTE ?=
BENCHSTAT := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
microbench:
	@load0=$$(cut -d' ' -f1-3 /proc/loadavg); start=$$(date -u '+%Y-%m-%d %H:%M UTC'); \
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=1s -count $(MICROCOUNT) -timeout 30m ./translator/ >$(MICROBENCHOUT)/microbench-runs.txt; \
	status=$$?; cat $(MICROBENCHOUT)/microbench-runs.txt; [ $$status -eq 0 ] || exit $$status; \
	{ echo "# make microbench, $$start: go test -run '^\$$' -bench . -benchmem -benchtime=1s -count $(MICROCOUNT) -timeout 30m ./translator/"; \
	  echo "# medians of the $(MICROCOUNT) runs in microbench-runs.txt (benchstat; ± is its 95% confidence interval)"; \
	  echo "# machine: $$(nproc) CPUs, $$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), Linux $$(uname -r), $$($(GO) env GOVERSION)"; \
	  echo "# load average (1, 5, 15 min): $$load0 before, $$(cut -d' ' -f1-3 /proc/loadavg) after"; \
	  if [ -n "$(MICROBENCHNOTE)" ]; then echo "# $(MICROBENCHNOTE)"; fi; \
	  echo; \
	  $(GO) run $(BENCHSTAT) $(MICROBENCHOUT)/microbench-runs.txt; } >$(MICROBENCHOUT)/microbench.txt
	@cat $(MICROBENCHOUT)/microbench.txt

# Fuzz each direction of the translator and the BGP receive path for
# FUZZTIME (default 20s) each.
# A run that ends with a bare "context deadline exceeded" and writes no
# failing input under testdata/fuzz found nothing: Go 1.26's deadline race
# (see test:).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate4$$' -fuzztime $(FUZZTIME) ./translator/
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate6$$' -fuzztime $(FUZZTIME) ./translator/
	$(GO) test -run '^$$' -fuzz '^FuzzFastPath$$' -fuzztime $(FUZZTIME) -parallel 1 ./translator/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./routing/
	$(GO) test -run '^$$' -fuzz '^FuzzReceive$$' -fuzztime $(FUZZTIME) -parallel 1 ./routing/

clean:
	rm -rf bin

# The etcd source's million-key read (issue 15), as root: a three-member
# lab cluster of Debian's etcd gets 1,000,000 mappings, then a fresh
# process reads them as a node does at start-up and reports the time and
# its peak RSS, with and without building the translator's table. About
# two minutes, most of it loading etcd. The short form is in `make test`.
etcd1m:
	$(GO) test -count=1 -run 'TestEtcd1M$$' -etcd1m -v -timeout 30m ./lab/etcdlab

# The IaaS controller experiment (issue 15), as root, 10 to 15 minutes:
# three etcd members (Debian's etcd-server, TLS with client certificates
# the lab generates) and three map646 nodes with [mappings] source = "etcd"
# behind the BIRD routers (ECMP over three). A controller creates 10,000
# mappings one by one and deletes 5,000, each change proven by a probe
# through every node, while a numbered UDP stream flows to established
# mappings; then an etcd member killed, a node cut off from etcd and
# healed, a node restarted without etcd (from its cache), a drain, 10,000
# add/del cycles on one mapping (leaks), a million mappings loaded into
# etcd (time until all three serve them, peak memory). Writes IAASOUT
# (summary.md, changes.csv, revisions.csv, phases.csv, propagation-cdf.png,
# revisions.png) and prints the summary; fails when an asserted target is
# missed. Installs bird2 and etcd-server if missing. The short form
# (TestIaaS: 300 changes, no million) is in `make test`.
IAASOUT ?= lab/iaas/results
iaas: build
	$(GO) build -o bin/iaas ./lab/iaas
	./bin/iaas -full -map646 $(CURDIR)/$(BIN) -out $(IAASOUT)
