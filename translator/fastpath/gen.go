package fastpath

// The object and its Go bindings are generated from xlat.c and committed,
// so that `go build` never needs clang; `make generate` rebuilds them and
// TestObjectMatchesSource checks that the committed object is what its
// source compiles to. -I: Debian's clang finds asm/types.h there.
//go:generate go tool bpf2go -tags linux -target bpfel -type settings -type key4 -type val4 -type key6 -type val6 -type lpm4 -type lpm6 -type counter -type entry_count xlat xlat.c -- -O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu
