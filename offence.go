package herd

// offence.go: log lines about misbehaving sources, themselves rate
// limited, so that a source that offends a thousand times a second costs
// one log line a minute, not a thousand a second.

import (
	"log/slog"
	"sync"
	"time"
)

const (
	// offenceEvery is the least time between two log lines about one
	// kind of offence from one source.
	offenceEvery = time.Minute
	// maxOffenders bounds the sources the log remembers; beyond it,
	// offences from new sources are logged as from "other sources".
	maxOffenders = 4096
)

// offenceKey is one kind of offence from one source.
type offenceKey struct{ what, source string }

// offenceCount is what the log knows of one offenceKey: when it may log
// again, and the offences since its last line.
type offenceCount struct {
	next  time.Time
	count uint64
}

// offenceLog decides which offences are logged. The zero value is ready;
// it is safe for concurrent use.
type offenceLog struct {
	mu sync.Mutex
	m  map[offenceKey]*offenceCount
}

// note records one offence at now and reports whether to log a line, with
// the source to name in it and the number of offences the line covers
// (this one and those not logged since the last line).
func (o *offenceLog) note(what, source string, now time.Time) (string, uint64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = make(map[offenceKey]*offenceCount)
	}
	key := offenceKey{what, source}
	c := o.m[key]
	if c == nil {
		if len(o.m) >= maxOffenders {
			o.forget(now)
		}
		if len(o.m) >= maxOffenders {
			key.source = "other sources"
			c = o.m[key]
		}
		if c == nil {
			c = &offenceCount{}
			o.m[key] = c
		}
	}
	c.count++
	if now.Before(c.next) {
		return key.source, 0, false
	}
	n := c.count
	c.count = 0
	c.next = now.Add(offenceEvery)
	return key.source, n, true
}

// forget drops the sources whose last line is more than offenceEvery old
// and that have not offended since. Called with o.mu held.
func (o *offenceLog) forget(now time.Time) {
	for k, c := range o.m {
		if c.count == 0 && !now.Before(c.next) {
			delete(o.m, k)
		}
	}
}

// offence logs one offence of kind what (the log message) from source,
// with attrs, at most once per source per minute; the line carries the
// number of offences it covers.
func (n *Node) offence(what, source string, attrs ...slog.Attr) {
	source, count, ok := n.offences.note(what, source, n.clock.Now())
	if !ok {
		return
	}
	all := append([]slog.Attr{slog.String("source", source), slog.Uint64("count", count)}, attrs...)
	n.log.LogAttrs(n.ctx, slog.LevelWarn, what, all...)
}
