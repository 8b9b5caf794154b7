// Command testsum reads the events of `go test -json` on its standard
// input, prints what `go test` prints without -v (a line per package, the
// whole output of each failed test, build errors), and ends with one line
// that counts what ran:
//
//	make test: 14 packages, 1234 tests passed, 0 failed, 3 skipped
//
// so that a reader of a CI log sees at once when tests were skipped (a lab
// that was not run as root, say). Tests and subtests count alike. Before
// that line it lists the failed tests, or, when none failed, the skipped
// ones with the reason each gave.
//
// It exits 1 when a test or a package failed, a package did not build, or
// no package ran a test at all; `make test` also keeps go test's own exit
// status (pipefail). It lives in lab/, with the rest of the test tooling,
// so that cmd/ holds only map646's own commands.
//
// It imports the standard library only.
package main
