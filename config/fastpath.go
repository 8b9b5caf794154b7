package config

// FastPathMode is [fastpath] mode: whether `map646 run` attaches the kernel
// fast path (translator/fastpath) at the tun device's egress.
type FastPathMode uint8

const (
	// FastPathOff: the tun path carries every packet. The default: a new
	// data path inside the kernel is something an operator opts into, not
	// something an upgrade switches on (and the packaged unit does not
	// grant CAP_BPF); "auto" is the recommended setting on Linux 6.6 and
	// later.
	FastPathOff FastPathMode = iota
	// FastPathAuto: attached when the kernel and the privileges allow it
	// (BPF, tcx: Linux 6.6, CAP_BPF and CAP_NET_ADMIN); otherwise the tun
	// path alone, with a warning.
	FastPathAuto
	// FastPathRequired: `map646 run` refuses to start without it.
	FastPathRequired
)

var fastPathModes = []string{"off", "auto", "required"}

func (m FastPathMode) String() string { return fastPathModes[m] }

// FastPath is the [fastpath] section.
type FastPath struct {
	Mode FastPathMode
}

// decodeFastPath reads [fastpath].
func (c *Config) decodeFastPath(s *section) {
	switch s.enum("mode", fastPathModes...) {
	case "auto":
		c.FastPath.Mode = FastPathAuto
	case "required":
		c.FastPath.Mode = FastPathRequired
	default:
		c.FastPath.Mode = FastPathOff
	}
	s.done()
}

// describeFastPath writes the [fastpath] section.
func (c *Config) describeFastPath(line func(name, format string, args ...any)) {
	switch c.FastPath.Mode {
	case FastPathAuto:
		line("fast path", "auto: attached at the tun device's egress if the kernel allows it, else the tun path alone (warned)")
	case FastPathRequired:
		line("fast path", "required: attached at the tun device's egress, or map646 run refuses to start")
	default:
		line("fast path", "off: the tun path carries every packet")
	}
}
