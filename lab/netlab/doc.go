// Package netlab builds network-namespace labs on one Linux machine and
// runs the real map646 in them: the end-to-end tests in lab/ and the
// benchmarks in lab/bench use it.
//
// # Contract
//
//   - Everything it creates is removed by a cleanup registered on the TB
//     that created it (t.Cleanup): namespaces (NewNS, named "m646l" + 8 random
//     hex digits + "-" + role, so that concurrent labs never collide and a
//     leftover is recognisable), processes it started (Start, StartMap646;
//     stopped by their PID: SIGTERM, then SIGKILL to their process group),
//     temporary files. Cleanups also run when the test fails or times out
//     through t.Fatal. A test binary that dies without them (go test
//     -timeout, SIGKILL) takes the processes it started along (parent-death
//     signal), and its namespaces are deleted by the next NewNS of any
//     process: each namespace is recorded in /run/netlab with its creator's
//     PID and start time, and only those of dead creators are swept.
//   - It never touches the root namespace: no link, address, route or sysctl
//     is changed outside the namespaces it created. Addresses are the
//     caller's; map646's tests use documentation addresses only.
//   - Every command runs with a timeout (DefaultTimeout unless told), so a
//     hung tool fails the test instead of hanging it.
//   - A method that can fail takes the TB to fail as its first argument, so
//     that subtests call it with their own t (calling FailNow on a parent
//     test from a subtest is an error in package testing).
//   - Root is needed for all of it: RequireRoot skips a test that is not
//     run as root, saying so, and fails it under CI (package labreq). Need installs missing tools from Debian
//     packages (apt-get), once per process.
//
// TB is the subset of testing.TB that netlab uses; *testing.T and
// *testing.B satisfy it, and Script provides it to a program (the failover
// experiment, the soak, the bench). Stoppable and Attempt let a part of
// an experiment (a step, a subject) fail without ending the whole.
//
// # Imports
//
// It owns the namespaces, links, processes and temporary files it creates
// and their owner records (/run/netlab). It imports lab/labreq,
// lab/poll, netlink, netns and x/sys; nothing else of map646: the lab packages (lab/topo,
// lab/failover, lab/bench, the lab tests) and the command's root tests
// import it.
package netlab
