package bench

// prop.go: "herd bench prop", how long a report takes to reach
// another server. Each sample sends a new IAMAT to server A and at once
// starts asking server B "WHATSAT CLIENT 1 0" (which calls no provider),
// one request at a time, until B's AT line is the new report's. The
// sample is the time from writing the IAMAT to reading B's first reply
// that has it, so it includes the client's hop to A and is coarse by up
// to one WHATSAT round trip on B.
//
// With -load-rate R, an open-loop IAMAT load of R requests per second
// (load.go) runs in the background at -load-addr (default A)
// while the samples are taken, so that propagation can be measured at a
// known fraction of the peak rate rather than only idle or saturated.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/proxyherd/herd/internal/cli"
)

type propOptions struct {
	from, to    string
	n, warmup   int
	timeout     time.Duration // bound on one sample
	interval    time.Duration // pause between samples
	dialTimeout time.Duration
}

// propReport is what prop prints: the samples and, with -load-rate, the
// background load that ran meanwhile.
type propReport struct {
	propResult
	Load *loadResult `json:"load,omitempty"`
}

type propResult struct {
	From       string         `json:"from"`
	To         string         `json:"to"`
	Samples    int            `json:"samples"`
	Lost       int            `json:"lost"`       // samples B did not have within the timeout
	Mismatches int            `json:"mismatches"` // B's AT line differed from A's reply
	Polls      float64        `json:"polls_per_sample"`
	FirstErr   string         `json:"first_error,omitempty"`
	Latency    latencySummary `json:"latency"`
}

func propFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	var o propOptions
	fs.StringVar(&o.from, "from", cli.DefaultAddr, "`address` of the server that gets the IAMAT")
	fs.StringVar(&o.to, "to", "", "`address` of the server asked with WHATSAT (required)")
	fs.IntVar(&o.n, "n", 1000, "samples")
	fs.IntVar(&o.warmup, "warmup", 10, "samples before the measured ones, not counted")
	fs.DurationVar(&o.timeout, "timeout", time.Second, "bound on one sample")
	fs.DurationVar(&o.interval, "interval", time.Millisecond, "pause between samples, so that each flood has finished")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 5*time.Second, "bound on connecting")
	var lo loadOptions
	fs.StringVar(&lo.addr, "load-addr", "", "`address` of the background load (default: -from)")
	loadFlagSet(fs, &lo, "load-")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	return func(ctx context.Context, e *env, _ []string) int {
		if lo.rate > 0 {
			lo.duration = 1000 * time.Hour // until the samples are taken
			if msg := lo.check("load-"); msg != "" {
				return benchUsage(e, "prop", "%s", msg)
			}
			if lo.addr == "" {
				lo.addr = o.from
			}
		} else if lo.rate < 0 || lo.addr != "" {
			return benchUsage(e, "prop", "a background load needs -load-rate above 0")
		}
		switch {
		case o.to == "":
			return benchUsage(e, "prop", "-to is required")
		case o.n < 1 || o.n > 10_000_000:
			return benchUsage(e, "prop", "-n %d: want 1 to 10000000", o.n)
		case o.warmup < 0 || o.warmup > 1_000_000:
			return benchUsage(e, "prop", "-warmup %d: want 0 to 1000000", o.warmup)
		case o.timeout <= 0:
			return benchUsage(e, "prop", "-timeout %v: want more than 0", o.timeout)
		case o.interval < 0:
			return benchUsage(e, "prop", "-interval %v: want 0 or more", o.interval)
		}
		var res *propResult
		var load *loadResult
		var err error
		if lo.rate > 0 {
			res, load, err = runPropUnderLoad(ctx, o, lo)
		} else {
			res, err = runProp(ctx, o)
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "herd bench prop: %v\n", err)
			return exitFailure
		}
		if *asJSON {
			writeJSON(e, propReport{*res, load})
		} else {
			if load != nil {
				printLoad(e.stdout, "background load", load)
			}
			fmt.Fprintf(e.stdout, "prop %s -> %s: %d samples, %d lost, %d mismatched, %.1f WHATSAT polls per sample\n",
				res.From, res.To, res.Samples, res.Lost, res.Mismatches, res.Polls)
			fmt.Fprintf(e.stdout, "  propagation %s\n", res.Latency)
			if res.FirstErr != "" {
				fmt.Fprintf(e.stdout, "  first error: %s\n", res.FirstErr)
			}
		}
		if res.Lost > 0 || res.Mismatches > 0 || res.Samples == 0 || load != nil && load.Errors > 0 {
			return exitFailure
		}
		return exitOK
	}
}

// propConn is a line-oriented client connection.
type propConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialProp(ctx context.Context, o *propOptions, addr string) (*propConn, error) {
	d := net.Dialer{Timeout: o.dialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &propConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}, nil
}

// maxWhatsatLines bounds the lines of one WHATSAT reply prop reads.
const maxWhatsatLines = 100000

// readLine returns the next line without its newline; the slice is valid
// until the next read.
func (pc *propConn) readLine() ([]byte, error) {
	line, err := pc.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return line[:len(line)-1], nil
}

// whatsat asks for client's record and returns the reply's first line: an
// AT line, or "? ..." while the server does not know the client.
func (pc *propConn) whatsat(req []byte) ([]byte, error) {
	if _, err := pc.c.Write(req); err != nil {
		return nil, err
	}
	line, err := pc.readLine()
	if err != nil {
		return nil, err
	}
	first := bytes.Clone(line)
	if bytes.HasPrefix(first, []byte("? ")) {
		return first, nil
	}
	// The JSON follows; the reply ends with an empty line.
	for i := 0; i < maxWhatsatLines; i++ {
		line, err := pc.readLine()
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			return first, nil
		}
	}
	return nil, fmt.Errorf("WHATSAT reply longer than %d lines", maxWhatsatLines)
}

// runProp takes o.warmup + o.n samples. It fails only when it cannot
// connect; lost samples are counted (and the connections reopened, since
// a late reply would be taken for the next one's). A cancelled ctx stops
// it within one sample's timeout.
func runProp(ctx context.Context, o propOptions) (*propResult, error) {
	res := &propResult{From: o.from, To: o.to}
	var a, b *propConn
	closeConns := func() {
		if a != nil {
			a.c.Close()
		}
		if b != nil {
			b.c.Close()
		}
		a, b = nil, nil
	}
	defer closeConns()

	client := "prop-" + runID()
	prefix := []byte("IAMAT " + client + " " + benchLocation + " ")
	poll := []byte("WHATSAT " + client + " 1 0\n")
	suffix := make([]byte, 0, 64)
	req := make([]byte, 0, 128)
	hist := newLatHist()
	var last int64
	var polls int
	for i := 0; i < o.warmup+o.n && ctx.Err() == nil; i++ {
		if i > 0 && o.interval > 0 {
			t := time.NewTimer(o.interval)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		if a == nil {
			var err error
			if a, err = dialProp(ctx, &o, o.from); err != nil {
				return nil, fmt.Errorf("-from %s: %w", o.from, err)
			}
			if b, err = dialProp(ctx, &o, o.to); err != nil {
				return nil, fmt.Errorf("-to %s: %w", o.to, err)
			}
		}
		counted := i >= o.warmup
		last = max(last+1, time.Now().UnixNano())
		suffix = append(append(append(suffix[:0], ' '), client...), ' ')
		suffix = appendClientTime(append(suffix, benchLocation+" "...), last)
		req = append(appendClientTime(append(req[:0], prefix...), last), '\n')

		deadline := time.Now().Add(o.timeout)
		a.c.SetDeadline(deadline)
		b.c.SetDeadline(deadline)
		t0 := time.Now()
		var at []byte
		var err error
		if _, err = a.c.Write(req); err == nil {
			for n := 1; ; n++ {
				at, err = b.whatsat(poll)
				if err != nil || (bytes.HasPrefix(at, []byte("AT ")) && bytes.HasSuffix(at, suffix)) {
					if counted {
						polls += n
					}
					break
				}
			}
		}
		lat := time.Since(t0)
		var aLine []byte
		if err == nil {
			aLine, err = a.readLine()
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if counted {
				res.Lost++
				if res.FirstErr == "" {
					res.FirstErr = fmt.Sprintf("sample %d: %v", i-o.warmup+1, err)
				}
			}
			closeConns()
			continue
		}
		if !bytes.Equal(aLine, at) && counted {
			res.Mismatches++
			if res.FirstErr == "" {
				res.FirstErr = fmt.Sprintf("sample %d: %s answered %q but %s holds %q", i-o.warmup+1, o.from, aLine, o.to, at)
			}
		}
		if counted {
			hist.record(int64(lat))
			res.Samples++
		}
	}
	if res.Samples > 0 {
		res.Polls = float64(polls) / float64(res.Samples)
	}
	res.Latency = hist.summary()
	if res.Samples == 0 && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return res, nil
}

// runPropUnderLoad starts the open-loop load lo, takes the samples once
// its window has started (after its prefill and warm-up), then ends it
// and waits for its last replies.
func runPropUnderLoad(ctx context.Context, o propOptions, lo loadOptions) (*propResult, *loadResult, error) {
	started, stop := make(chan struct{}), make(chan struct{})
	lo.stop = stop
	lo.hooks.windowStart = func() { close(started) }
	type loadDone struct {
		res *loadResult
		err error
	}
	done := make(chan loadDone, 1)
	go func() {
		res, err := runLoad(ctx, lo)
		done <- loadDone{res, err}
	}()
	select {
	case <-started:
	case d := <-done:
		if d.err == nil {
			d.err = errors.New("ended before its window started")
		}
		return nil, nil, fmt.Errorf("background load: %w", d.err)
	}
	res, err := runProp(ctx, o)
	close(stop)
	d := <-done
	if err != nil {
		return nil, nil, err
	}
	if d.err != nil {
		return nil, nil, fmt.Errorf("background load: %w", d.err)
	}
	return res, d.res, nil
}
