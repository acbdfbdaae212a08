package bench

// loadconn.go: one connection of "herd bench load": its requests
// (client IDs formatted as they are written), its writers (closed loop,
// open loop) and its reader.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// loadConn is one connection of a load run.
type loadConn struct {
	o        *loadOptions
	c        net.Conn
	head     []byte // "IAMAT bench-RUN-CONN"
	nclients uint64 // client IDs of this connection; 0: a new one for every request
	base     int64  // client time of request 0, ns since the epoch
	fill     uint64 // requests of the prefill (0 without one)
	sched    schedule

	ring  []atomic.Int64 // closed loop: send time of request i at i % inflight (ns since t0)
	sent  atomic.Uint64  // requests handed to the connection (stored before the write)
	recvd atomic.Uint64  // replies read
	wake  chan struct{}  // the reader freed room for more requests

	// Writer only.
	writeErr error
	maxOut   uint64 // open loop: most requests unanswered
	maxLag   int64  // open loop: furthest behind schedule, ns

	// Reader only.
	rbuf     []byte
	hist     *latHist
	counted  uint64 // replies received in the window
	kind     string // "AT", "echo", "any", or "" until the first reply decides
	errs     uint64
	firstErr string
}

func newLoadConn(o *loadOptions, c net.Conn, i int, run string, base int64) *loadConn {
	lc := &loadConn{
		o:        o,
		c:        c,
		head:     []byte("IAMAT " + clientIDHead(run, i)),
		nclients: uint64(o.clientsOf(i)),
		base:     base,
		sched:    schedule{rate: o.rate, conns: o.conns, conn: i},
		ring:     make([]atomic.Int64, o.inflight),
		wake:     make(chan struct{}, 1),
		rbuf:     make([]byte, maxReplyBytes),
		hist:     newLatHist(),
	}
	if o.prefill {
		lc.fill = fillCount(lc.nclients, o.fillFraction)
	}
	switch o.expect {
	case "at":
		lc.kind = "AT"
	case "echo", "any":
		lc.kind = o.expect
	}
	return lc
}

// clientIDHead is what the client IDs of connection i of a run start with.
func clientIDHead(run string, i int) string {
	return "bench-" + run + "-" + strconv.Itoa(i)
}

// appendClientID appends client k's ID of the connection whose IDs start
// with head and that has nclients of them (0: unbounded). One client per
// connection keeps the short form, head alone.
func appendClientID(dst []byte, head string, nclients, k uint64) []byte {
	dst = append(dst, head...)
	if nclients == 1 {
		return dst
	}
	return strconv.AppendUint(append(dst, '-'), k, 10)
}

// loadClientID returns the ID of client k of connection i in a run with
// options o and tag run: the IDs the in-process tools look up.
func loadClientID(o *loadOptions, run string, i int, k uint64) string {
	return string(appendClientID(nil, clientIDHead(run, i), uint64(o.clientsOf(i)), k))
}

// fillCount returns how many of n clients a prefill reports: all of them,
// or with 0 < frac < 1 that fraction, rounded, at least one.
func fillCount(n uint64, frac float64) uint64 {
	if frac <= 0 || frac >= 1 || n == 0 {
		return n
	}
	return min(max(uint64(math.Round(float64(n)*frac)), 1), n)
}

// spreadClient returns the client that report j of a prefill of c out of
// n clients is about: c clients spread evenly over 0..n-1.
func spreadClient(j, n, c uint64) uint64 {
	return j * n / c
}

// clientOf returns the client (0 to nclients-1, or any for unbounded)
// that request seq reports.
func (lc *loadConn) clientOf(seq uint64) uint64 {
	switch {
	case seq < lc.fill:
		return spreadClient(seq, lc.nclients, lc.fill)
	case lc.nclients == 0:
		return seq
	default:
		return (seq - lc.fill) % lc.nclients
	}
}

// appendRequest appends request seq: an IAMAT of its client, at client
// time base+seq, so that every request is newer than the last.
func (lc *loadConn) appendRequest(buf []byte, seq uint64) []byte {
	buf = append(buf, lc.head...)
	if lc.nclients != 1 {
		buf = strconv.AppendUint(append(buf, '-'), lc.clientOf(seq), 10)
	}
	buf = append(buf, " "+benchLocation+" "...)
	buf = appendClientTime(buf, lc.base+int64(seq))
	return append(buf, '\n')
}

// runFill reports each client of the prefill once, closed loop, and waits
// for the replies. A server silent for o.drain ends it (as an error).
func (lc *loadConn) runFill() {
	if lc.fill == 0 {
		return
	}
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		lc.read(0, 0, lc.fill, true, func() int64 { return 0 })
	}()
	t0 := time.Now()
	lc.writeClosed(nil, rdone, math.MaxInt64, lc.fill, func() int64 { return int64(time.Since(t0)) })
	<-rdone
	lc.c.SetReadDeadline(time.Time{})
	if lc.recvd.Load() < lc.fill && lc.writeErr == nil {
		lc.noteErr(fmt.Sprintf("prefill: %d of %d reports answered", lc.recvd.Load(), lc.fill))
	}
}

// runMain runs the warm-up and the window, then half-closes and reads the
// last replies.
func (lc *loadConn) runMain(stop <-chan struct{}, winStart, winEnd int64, now func() int64) {
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		lc.read(winStart, winEnd, 0, false, now)
	}()
	if lc.o.rate > 0 {
		lc.writeOpen(stop, rdone, winEnd, now)
	} else {
		lc.writeClosed(stop, rdone, winEnd, math.MaxUint64, now)
	}
	// Half-close: the server answers what is pending, then closes.
	if cw, ok := lc.c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	lc.c.SetReadDeadline(time.Now().Add(lc.o.drain))
	<-rdone
}

// writeClosed keeps inflight requests outstanding until stop or rdone is
// closed, end (ns on now's clock) has passed, or limit requests are sent.
func (lc *loadConn) writeClosed(stop, rdone <-chan struct{}, end int64, limit uint64, now func() int64) {
	w := uint64(len(lc.ring))
	buf := make([]byte, 0, int(w)*(len(lc.head)+64))
	seq := lc.sent.Load()
	for seq < limit {
		select {
		case <-stop:
			return
		default:
		}
		t := now()
		if t >= end {
			return
		}
		free := min(w-(seq-lc.recvd.Load()), limit-seq)
		if free == 0 {
			select {
			case <-lc.wake:
			case <-stop:
				return
			case <-rdone:
				return
			}
			continue
		}
		buf = buf[:0]
		for k := seq; k < seq+free; k++ {
			buf = lc.appendRequest(buf, k)
			lc.ring[k%w].Store(t)
		}
		seq += free
		lc.sent.Store(seq)
		if _, err := lc.c.Write(buf); err != nil {
			lc.writeErr = err
			return
		}
	}
}

// maxOpenBatch bounds the requests of one write in open loop, when the
// writer has fallen far behind schedule.
const maxOpenBatch = 4096

// writeOpen sends request k of the main phase when the schedule makes it
// due, whatever the replies do, until stop or rdone is closed or every
// request due before end (ns on now's clock) is sent.
func (lc *loadConn) writeOpen(stop, rdone <-chan struct{}, end int64, now func() int64) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	last := lc.sched.due(end - 1) // requests due before the end
	var buf []byte
	var k uint64 // next request of the main phase
	for k < last {
		select {
		case <-stop:
			return
		default:
		}
		t := now()
		due := min(lc.sched.due(t), last, k+maxOpenBatch)
		if due == k {
			timer.Reset(time.Duration(lc.sched.at(k) - t))
			select {
			case <-timer.C:
			case <-stop:
				return
			case <-rdone:
				return
			}
			continue
		}
		lc.maxLag = max(lc.maxLag, t-lc.sched.at(k))
		buf = buf[:0]
		for ; k < due; k++ {
			buf = lc.appendRequest(buf, lc.fill+k)
		}
		sent := lc.fill + k
		lc.sent.Store(sent)
		lc.maxOut = max(lc.maxOut, sent-lc.recvd.Load())
		if _, err := lc.c.Write(buf); err != nil {
			lc.writeErr = err
			return
		}
	}
}

// maxReplyBytes bounds one reply line in load; IAMAT replies are about
// 100 bytes.
const maxReplyBytes = 64 << 10

// read reads and checks replies until EOF, an error, the read deadline,
// or (limit > 0) until limit replies in all have come. It records the
// latency of replies in the window [winStart, winEnd): by the time they
// arrive in closed loop, by the time they were due in open loop (times
// in ns on now's clock). With fill, it records nothing and gives up after
// o.drain without a reply.
func (lc *loadConn) read(winStart, winEnd int64, limit uint64, fill bool, now func() int64) {
	w := uint64(len(lc.ring))
	open := lc.o.rate > 0 && !fill
	buf := lc.rbuf
	start, end := 0, 0
	idx := lc.recvd.Load()
	for limit == 0 || idx < limit {
		if fill {
			lc.c.SetReadDeadline(time.Now().Add(lc.o.drain))
		}
		n, err := lc.c.Read(buf[end:])
		t := now()
		end += n
		got := uint64(0)
		for {
			i := bytes.IndexByte(buf[start:end], '\n')
			if i < 0 {
				break
			}
			line := buf[start : start+i]
			start += i + 1
			r := idx + got
			if r >= lc.sent.Load() {
				lc.noteErr(fmt.Sprintf("a reply nobody asked for: %q", truncate(line, 80)))
				lc.errs++
				lc.recvd.Store(r)
				return
			}
			lc.check(line)
			switch {
			case fill:
			case open:
				k := r - lc.fill
				if due := lc.sched.at(k); due >= winStart && due < winEnd {
					lc.hist.record(lc.sched.latency(k, t))
				}
				if t >= winStart && t < winEnd {
					lc.counted++
				}
			case t >= winStart && t < winEnd:
				lc.hist.record(t - lc.ring[r%w].Load())
				lc.counted++
			}
			got++
		}
		if got > 0 {
			idx += got
			lc.recvd.Store(idx)
			select {
			case lc.wake <- struct{}{}:
			default:
			}
		}
		switch {
		case start == end:
			start, end = 0, 0
		case end == len(buf):
			if start == 0 {
				lc.noteErr(fmt.Sprintf("a reply longer than %d bytes", len(buf)))
				lc.errs++
				return
			}
			end = copy(buf, buf[start:end])
			start = 0
		}
		if err != nil {
			if !errors.Is(err, io.EOF) || idx < lc.sent.Load() {
				lc.noteErr("read: " + err.Error())
			}
			if start < end {
				lc.noteErr(fmt.Sprintf("a partial reply at the end: %q", truncate(buf[start:end], 80)))
				lc.errs++
			}
			return
		}
	}
}

// addTo adds the connection's counts, errors and latencies to res.
func (lc *loadConn) addTo(res *loadResult) {
	sent, recvd := lc.sent.Load(), lc.recvd.Load()
	res.Count += lc.counted
	res.Sent += sent - min(lc.fill, sent)
	res.Answered += recvd - min(lc.fill, recvd)
	if lc.nclients == 0 {
		res.Distinct += sent
	} else {
		res.Distinct += min(sent, lc.nclients)
	}
	res.MaxOutstanding = max(res.MaxOutstanding, lc.maxOut)
	res.MaxLag = max(res.MaxLag, time.Duration(lc.maxLag))
	res.Errors += lc.errs
	if lost := sent - recvd; lost > 0 {
		res.Errors += lost
		lc.noteErr(fmt.Sprintf("%d requests unanswered", lost))
	}
	if res.FirstErr == "" {
		res.FirstErr = lc.firstErr
	}
	if lc.writeErr != nil {
		res.Errors++
		if res.FirstErr == "" {
			res.FirstErr = "write: " + lc.writeErr.Error()
		}
	}
	res.hist.merge(lc.hist)
	switch {
	case res.Replies == "":
		res.Replies = lc.kind
	case lc.kind != "" && lc.kind != res.Replies:
		res.Replies = "mixed"
	}
}

// check counts line as an error unless it is the kind of reply expected.
func (lc *loadConn) check(line []byte) {
	ok := true
	switch lc.kind {
	case "":
		switch {
		case bytes.HasPrefix(line, []byte("AT ")):
			lc.kind = "AT"
		case bytes.HasPrefix(line, []byte("IAMAT ")):
			lc.kind = "echo"
		default:
			ok = false
		}
	case "AT":
		ok = bytes.HasPrefix(line, []byte("AT "))
	case "echo":
		ok = bytes.HasPrefix(line, []byte("IAMAT "))
	}
	if !ok {
		lc.errs++
		lc.noteErr(fmt.Sprintf("unexpected reply %q", truncate(line, 80)))
	}
}

func (lc *loadConn) noteErr(s string) {
	if lc.firstErr == "" {
		lc.firstErr = s
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU returns the CPU time (user and system) process pid has used, from
// /proc/PID/stat, or 0 if it is unknown.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may
	// hold anything: state is the 3rd field, utime the 14th, stime the 15th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const clockTicks = 100 // USER_HZ, 100 on every Linux that Go supports
	return time.Duration(utime+stime) * (time.Second / clockTicks)
}
