// Package lab holds map646's end-to-end tests: the real binary in network
// namespaces, real kernels on both sides, real tools (ping, traceroute,
// iperf3, nstat). Its tests need root and skip, saying so, without it
// (under CI they fail: see lab/labreq); they install the Debian packages they need. The topology is drawn in
// lab_test.go; the helpers are in lab/netlab.
//
// It owns nothing but tests. Like every lab package, it drives the real
// binary and reads its state through `map646 status -json`: its tests
// import lab/netlab, lab/topo, lab/labreq, cmd/map646/control (the status
// schema) and translator/packettest (to check the packets that come out),
// never the daemon or the translator themselves.
package lab
