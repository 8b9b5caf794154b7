// Package lab holds map646's end-to-end tests: the real binary in network
// namespaces, real kernels on both sides, real tools (ping, traceroute,
// iperf3, nstat). Its tests need root and skip, saying so, without it
// (under CI they fail: see lab/labreq); they install the Debian packages they need. The topology is drawn in
// lab_test.go; the helpers are in lab/netlab.
package lab
