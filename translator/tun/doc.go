// Package tun is the I/O around the pure translator: the tun devices the
// data plane reads packets from and writes translated packets to, and the
// virtio-net header and software segmentation code that joins them.
//
// # Devices
//
// Two back-ends sit behind Device:
//
//   - OpenOffload: the fast Linux device, opened with golang.org/x/sys/unix
//     as IFF_TUN|IFF_NO_PI|IFF_VNET_HDR|IFF_MULTI_QUEUE with checksum and TCP
//     segmentation offload, and UDP segmentation where the kernel has it
//     (Linux 6.2; on EINVAL the device goes on without it). The kernel hands
//     over TCP (and UDP) super-packets of up to 64 KB, which the translator
//     translates whole (translator.TranslateGSOInPlace). Each queue is its own file
//     descriptor; the kernel spreads flows over the queues by hash.
//     SelfTest (selftest_linux.go) checks each enabled offload before the
//     device serves, through a loop that stays on the node, and switches
//     off the ones that fail; OffloadStates says which are on.
//   - OpenPlain: github.com/songgao/water's plain device, one queue, no
//     virtio header, no offloads: the safe mode (offload = false) for when an
//     offload misbehaves.
//
// Both refuse a name that any link already has (ErrNameTaken) rather than
// attach to it, set the MTU and bring the link up. The device is created in
// the network namespace of the calling OS thread. The kernel removes it when
// its last queue is closed; Close is safe twice and wakes blocked readers,
// whose ReadBatch then returns an error wrapping os.ErrClosed. water only
// creates the plain device: its reads and writes go through a duplicate of
// water's descriptor, like the offload device's (see below).
//
// # Queues and batches
//
// The data plane runs one goroutine per queue, locked to its OS thread
// (runtime.LockOSThread), with the buffers of NewBatch allocated once per
// queue, and writes what it translated to the queue it read it from: the
// kernel steers a flow to the queue that last wrote packets of that flow
// (its hash is the same in both directions), so replies tend to come back
// to the same worker. Tend to only: a packet of a flow the kernel has not
// recorded goes to a queue chosen by its hash or by the CPU that sends it,
// and the kernel's own answers (an echo reply, an ICMP error) may come
// back on any queue. Nothing in map646 depends on it: every queue has its
// reader, and a packet is translated the same whichever reads it. ReadBatch waits for one
// packet and takes whatever else is ready. Packets are read at Packet.Off, leaving Headroom bytes in
// front for the longer IPv6 header; the device never writes outside
// Buf[Off:Off+Len]. ReadBatch and WriteBatch do not allocate.
//
// # Waiting for packets
//
// A queue's descriptor is read and written with raw system calls on the
// calling thread and is not in the Go runtime's poller: there, a packet on
// an idle queue would wake the thread in epoll_wait, which would wake the
// worker's locked thread, and every further packet would wake the epoll
// thread again while the worker is busy reading. A reader that finds its
// queue empty instead waits in ppoll(2) on its own thread, together with
// an eventfd that Close signals: one wake-up per idle period. On an idle
// machine that wake-up (a halted CPU brought back) is most of a packet's
// latency; SetBusyPoll trades a CPU for it: the reader keeps reading for
// the given time before it sleeps.
//
// # Checksums and super-packets
//
// On read, a super-packet is returned with GSOSize > 0 and Partial set: its
// transport checksum field holds the pseudo-header sum, as
// translator.TranslateGSOInPlace expects. An ordinary packet whose checksum the
// kernel left to us (NEEDS_CSUM) has it completed in the buffer, so the
// translator sees partial sums on super-packets only. Packets the device
// cannot return (an unknown GSO type, a malformed virtio header) are
// dropped and counted by Dropped.
//
// On write, the virtio header is built from the packet itself (HeaderFor):
// IP version and protocol give the GSO type, the IP header length the
// checksum start. A packet with Partial false and GSOSize 0 is written with
// the all-zero header, its checksum taken as complete. The plain device
// refuses super-packets and partial checksums.
//
// Segment splits a super-packet into ordinary packets with complete
// checksums, for the super-packets TranslateGSOInPlace declines: fragments,
// options, ICMP-generating cases and anything else that must take the
// per-packet path.
//
// # Imports
//
// It owns the devices, their queues and buffers, and the virtio-net header.
// It imports the standard library, golang.org/x/sys/unix, water and
// netlink, and translator/internal/checksum for the checksum arithmetic it
// shares with the translator; not package translator itself (its tests
// do), and nothing above it: the data plane imports it.
package tun
