package herdtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/proxyherd/herd"
)

// ClientConn is a client's connection to a server, driven by the test's
// goroutine: its reads run the simulation until bytes arrive, so a test
// can talk to the herd without goroutines of its own. Use it only from
// the goroutine driving the cluster.
type ClientConn struct {
	c       *Cluster
	server  string
	e       *endpoint
	timeout time.Duration
	got     []byte // read from the connection, not yet returned
	err     error  // how the stream ended, once it has
}

// Connect dials server as the client called from (from names the
// connection in the trace: "from->server#n"). It runs the simulation until
// the dial is answered.
func (c *Cluster) Connect(from, server string) (*ClientConn, error) {
	addr, ok := c.addrs[server]
	if !ok {
		return nil, fmt.Errorf("herdtest: no server %q", server)
	}
	cc, err := c.sim.connectDriver(c, from, addr, c.opts.ReplyTimeout)
	if cc != nil {
		cc.server = server
	}
	return cc, err
}

func (s *Sim) connectDriver(c *Cluster, from, addr string, timeout time.Duration) (*ClientConn, error) {
	d, err := s.startDial(nil, from, addr)
	if err != nil {
		return nil, err
	}
	done := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return d.done
	}
	ok := s.RunUntil(done, timeout)
	c.checkBudget()
	if !ok {
		s.mu.Lock()
		d.done = true
		delete(s.dials, d)
		s.mu.Unlock()
		return nil, fmt.Errorf("herdtest: dial %s: no answer in %v", addr, timeout)
	}
	r := <-d.result
	if r.err != nil {
		return nil, r.err
	}
	return &ClientConn{c: c, e: r.c.(*endpoint), timeout: timeout}, nil
}

// Conn returns the connection's net.Conn (to pass to code that writes;
// blocking reads on it from the driving goroutine would deadlock).
func (cc *ClientConn) Conn() net.Conn { return cc.e }

// Write sends str. Like every write, it is delivered after the current
// step. With a flow-control window (Options.Window) it queues what fits
// and runs the simulation until the server has read enough for the rest;
// if that takes longer than the reply timeout it gives up with an error
// (the server is not reading: use Conn from a goroutine of the bubble to
// write without limit).
func (cc *ClientConn) Write(str string) error {
	e := cc.e
	s := e.s
	p := []byte(str)
	for {
		s.mu.Lock()
		n, err := e.writeLocked(p)
		s.mu.Unlock()
		p = p[n:]
		if err != nil || len(p) == 0 {
			return err
		}
		room := func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return e.room(1) > 0 || e.closed || e.rst
		}
		ok := s.RunUntil(room, cc.timeout)
		cc.c.checkBudget()
		if !ok {
			return fmt.Errorf("herdtest: %s: window full for %v, %d bytes not written", e.outKey[:len(e.outKey)-1], cc.timeout, len(p))
		}
	}
}

// CloseWrite half-closes the connection: the server reads EOF after what
// was written, answers what is pending, and closes.
func (cc *ClientConn) CloseWrite() error { return cc.e.CloseWrite() }

// Close closes the connection.
func (cc *ClientConn) Close() error { return cc.e.Close() }

// pull moves received bytes into cc.got, running the simulation until
// some arrive or the stream ends. It reports false when nothing more will
// come.
func (cc *ClientConn) pull() bool {
	if cc.err != nil {
		return false
	}
	e := cc.e
	s := e.s
	ready := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		// A party that stopped reading (Sim.StopReading) reads nothing
		// until it resumes: the read times out rather than block the
		// driver.
		return e.rst || e.closed || (!s.readStopped(e) && (len(e.buf) > 0 || e.eof))
	}
	ok := s.RunUntil(ready, cc.timeout)
	cc.c.checkBudget()
	if !ok {
		cc.err = fmt.Errorf("herdtest: %s: no reply in %v", e.outKey[:len(e.outKey)-1], cc.timeout)
		return false
	}
	var buf [4096]byte
	n, err := e.Read(buf[:])
	cc.got = append(cc.got, buf[:n]...)
	if err != nil {
		cc.err = err
	}
	return n > 0 || err == nil
}

// ReadLine returns the next line, newline included. At the end of the
// stream it returns what is left and the error that ended it (io.EOF
// after an orderly close).
func (cc *ClientConn) ReadLine() (string, error) { return cc.ReadUntil("\n") }

// ReadUntil returns everything up to and including the next sep (a
// WHATSAT reply ends at "\n\n"). At the end of the stream it returns what
// is left and the error that ended it.
func (cc *ClientConn) ReadUntil(sep string) (string, error) {
	for {
		if i := bytes.Index(cc.got, []byte(sep)); i >= 0 {
			out := string(cc.got[:i+len(sep)])
			cc.got = cc.got[i+len(sep):]
			return out, nil
		}
		if !cc.pull() && cc.err != nil {
			out := string(cc.got)
			cc.got = nil
			return out, cc.err
		}
	}
}

// ReadAll returns everything until the end of the stream. The error is
// nil after an orderly close (EOF).
func (cc *ClientConn) ReadAll() (string, error) {
	for cc.pull() {
	}
	out := string(cc.got)
	cc.got = nil
	if errors.Is(cc.err, io.EOF) {
		return out, nil
	}
	return out, cc.err
}

// Command sends one line (a newline is added) to server on a new
// connection, half-closes it, and returns everything the server sent
// until it closed. from names the connection in the trace.
func (c *Cluster) Command(from, server, line string) (string, error) {
	cc, err := c.Connect(from, server)
	if err != nil {
		return "", err
	}
	defer cc.Close()
	if err := cc.Write(line + "\n"); err != nil {
		return "", err
	}
	if err := cc.CloseWrite(); err != nil {
		return "", err
	}
	return cc.ReadAll()
}

// Arrival is what a server held when a client's line reached it; see
// [ClientConn.Watch].
type Arrival struct {
	// Seen reports whether the line has reached the server.
	Seen bool
	// At is the virtual time at which the line reached the server: the
	// receive time herd puts in its AT line.
	At time.Time
	// Before is the server's record of the watched client just before the
	// line arrived; Had reports whether it held one.
	Before herd.Record
	Had    bool
}

// Watch arranges that when the first complete line written on cc reaches
// the server, the returned Arrival records the virtual time and the
// server's record of client at that moment (just before the server reads
// the line). With it a test can compute herd's exact reply even while
// other reports race through the herd.
func (cc *ClientConn) Watch(client string) *Arrival {
	a := new(Arrival)
	c, server := cc.c, cc.server
	s := cc.e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	cc.e.peer().hook = func(data []byte) {
		if a.Seen || !bytes.Contains(data, []byte("\n")) {
			return
		}
		a.Seen = true
		a.At = s.Now()
		if n := c.nodes[server]; n != nil {
			a.Before, a.Had = n.Lookup(client)
		}
	}
	return a
}

// Report is the outcome of one line sent with [Cluster.Send].
type Report struct {
	// Reply is everything the server sent back until it closed.
	Reply string
	// Arrival is when the line reached the server and what it held then.
	Arrival
}

// Send sends one line (a newline is added) to server on a new connection
// named from, half-closes it and reads the whole reply, watching client
// (see [ClientConn.Watch]).
func (c *Cluster) Send(from, server, line, client string) (Report, error) {
	var rep Report
	cc, err := c.Connect(from, server)
	if err != nil {
		return rep, err
	}
	defer cc.Close()
	a := cc.Watch(client)
	if err := cc.Write(line + "\n"); err != nil {
		return rep, err
	}
	if err := cc.CloseWrite(); err != nil {
		return rep, err
	}
	rep.Reply, err = cc.ReadAll()
	rep.Arrival = *a
	return rep, err
}

// Report sends "IAMAT client location clientTime" to server on a new
// connection and reads the whole reply, recording when the line reached
// the server and what the server held for the client just before, so the
// caller can compute the exact expected reply with [Arrival.IAMAT].
func (c *Cluster) Report(server, client, location, clientTime string) (Report, error) {
	return c.Send(client, server, "IAMAT "+client+" "+location+" "+clientTime, client)
}

// IAMAT returns the exact reply herd must give to "IAMAT client location
// clientTime" that arrived at server as a describes: the AT line the
// server writes (computed by ATLine) if it comes after the record the
// server held, else the held record's line; and whether the report was
// accepted (changed the server's table).
func (a *Arrival) IAMAT(server, client, location, clientTime string) (reply string, accepted bool) {
	line, ok := ATLine(server, a.At, client, location, clientTime)
	if !ok {
		return "? IAMAT " + client + " " + location + " " + clientTime + "\n", false
	}
	rec, _ := RecordOf(line)
	if a.Had && rec.Compare(&a.Before) <= 0 {
		return a.Before.Line + "\n", false
	}
	return line + "\n", true
}

// IAMAT sends an IAMAT to server and returns the reply. It fails the test
// if the server cannot be reached or does not answer.
func (c *Cluster) IAMAT(server, client, location, clientTime string) string {
	c.t.Helper()
	rep, err := c.Report(server, client, location, clientTime)
	if err != nil {
		c.t.Fatalf("herdtest: IAMAT to %s: %v (got %q)", server, err, rep.Reply)
	}
	return rep.Reply
}

// WHATSAT sends "WHATSAT client radius bound" to server and returns the
// reply. It fails the test if the server cannot be reached or does not
// answer.
func (c *Cluster) WHATSAT(server, client, radius string, bound int) string {
	c.t.Helper()
	rep, err := c.Send(client, server, "WHATSAT "+client+" "+radius+" "+strconv.Itoa(bound), client)
	if err != nil {
		c.t.Fatalf("herdtest: WHATSAT to %s: %v (got %q)", server, err, rep.Reply)
	}
	return rep.Reply
}

// EmptyPlaces is the JSON of a WHATSAT reply with a bound of 0.
const EmptyPlaces = "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"OK\"\n}"

// WhatsatReply returns the exact WHATSAT reply for a stored AT line and a
// Places document (use EmptyPlaces for a bound of 0, PlacesDocument for
// the fake provider's answer).
func WhatsatReply(atLine string, doc []byte) string {
	return atLine + "\n" + strings.TrimRight(string(doc), "\n") + "\n\n"
}
