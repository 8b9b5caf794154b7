package dataplane

import (
	"sync/atomic"
	"time"
)

// limiter is a token bucket shared by every worker, kept as one atomic
// word: the generic cell rate algorithm's theoretical arrival time (the
// moment the bucket would be full again). An error may be sent when that
// moment lies at most burst-1 intervals ahead; sending one pushes it an
// interval further. A refusal is a load and a comparison, so a flood of
// packets that all earn an ICMP error does not make the workers fight over
// the word: it is written at most rate times a second.
type limiter struct {
	start  time.Time
	tat    atomic.Int64 // nanoseconds since start
	params atomic.Pointer[limit]
}

type limit struct {
	interval  int64 // nanoseconds per token
	tolerance int64 // (burst-1) intervals
}

func newLimiter(rate, burst int) *limiter {
	l := &limiter{start: time.Now()}
	l.set(rate, burst)
	return l
}

// set changes the rate (tokens per second, at least 1) and the burst (at
// least 1). Tokens already spent stay spent.
func (l *limiter) set(rate, burst int) {
	rate, burst = max(rate, 1), max(burst, 1)
	iv := int64(time.Second) / int64(rate)
	l.params.Store(&limit{interval: iv, tolerance: int64(burst-1) * iv})
}

// allow takes a token if there is one.
func (l *limiter) allow() bool {
	return l.allowAt(int64(time.Since(l.start)))
}

// allowAt is allow at the time now (nanoseconds since start).
func (l *limiter) allowAt(now int64) bool {
	p := l.params.Load()
	for {
		old := l.tat.Load()
		tat := max(old, now)
		if tat-now > p.tolerance {
			return false
		}
		if l.tat.CompareAndSwap(old, tat+p.interval) {
			return true
		}
	}
}
