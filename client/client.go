// Package client is a Go client for herd servers. It speaks the client half
// of the herd protocol (docs/protocol.md sections 1 to 4): IAMAT reports
// where a client is, WHATSAT asks what is near a client, and each answer
// comes back typed, with the exact bytes the server sent kept alongside.
//
// A [Conn] is one TCP connection to one server. It is safe for concurrent
// use and pipelined: many goroutines may call [Conn.IAMAT] and
// [Conn.WHATSAT] at once; requests are written in the order the calls take
// the connection's write lock, and replies, which a herd server sends in
// order, are handed back to the calls in that same order by one reader
// goroutine per connection.
//
// A server answers a command it considers invalid with "? " and the
// command; the call then returns an [*InvalidError], and the connection
// stays usable. A connection that breaks (the server closes it, a read or
// write fails, the server sends something that is not a reply) fails every
// pending and later call; open a new one with [Dial].
package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxReplyBytes bounds one reply when [Dialer.MaxReplyBytes] is
// zero. A herd server's largest reply is a WHATSAT answer, whose JSON the
// server takes from a provider response of at most 4 MiB.
const DefaultMaxReplyBytes = 8 << 20

// Errors returned by the package. Use errors.Is; the returned errors wrap
// these with details.
var (
	// ErrClosed is returned by calls on a [Conn] that [Conn.Close] has
	// closed, and by calls that were waiting for a reply when it did.
	ErrClosed = errors.New("client: connection closed")
	// ErrProtocol means the server sent something that is not a reply
	// of the expected form. When the reply's framing cannot be trusted
	// (an unexpected first line, data nobody asked for, a reply over the
	// size limit) the connection is closed too.
	ErrProtocol = errors.New("client: protocol error")
	// ErrBadRequest means the arguments cannot be sent as one command:
	// an empty field, or white space inside a field, would make the
	// server see a different command (or several). Nothing is sent.
	ErrBadRequest = errors.New("client: bad request")
)

// InvalidError is the error a call returns when the server answered its
// command with "? ", the server's word for an invalid command (an unknown
// client in WHATSAT, a bad location or number, and so on). The connection
// stays usable. Use errors.As to get it.
type InvalidError struct {
	// Line is the server's reply line exactly, without its final
	// newline: "? " followed by the command as the server received it.
	Line string
}

// Error returns "client: server answered " and the quoted reply line.
func (e *InvalidError) Error() string {
	return "client: server answered " + strconv.Quote(e.Line)
}

// AT is a server's AT line: the record of one client report, as the
// server that received the report wrote it. The fields are the line's
// fields as text, exactly as sent, because the protocol echoes the
// client's own bytes and an AT line read back from any server of the herd
// is byte-for-byte the one the first server wrote.
type AT struct {
	// Line is the whole AT line, without its newline.
	Line string
	// Server is the name of the server that received the IAMAT.
	Server string
	// Skew is that server's receive time minus the client's time, with a
	// sign and nine decimals, e.g. "+0.263873386". See SkewDuration.
	Skew string
	// Client is the client ID.
	Client string
	// Location is the client's ISO 6709 location, e.g.
	// "+34.068930-118.445127".
	Location string
	// Time is the client's time in POSIX seconds, as the client sent it.
	// See ClientTime.
	Time string
}

// SkewDuration returns Skew as a time.Duration. It fails if Skew does not
// have the protocol's form or does not fit in a Duration (about 292
// years).
func (a AT) SkewDuration() (time.Duration, error) {
	s := a.Skew
	if len(s) < 2 || (s[0] != '+' && s[0] != '-') {
		return 0, fmt.Errorf("%w: bad time difference %q", ErrProtocol, a.Skew)
	}
	sec, nsec, ok := parseSeconds(s[1:])
	if !ok || sec > (1<<63-1)/int64(time.Second)-1 {
		return 0, fmt.Errorf("%w: bad time difference %q", ErrProtocol, a.Skew)
	}
	d := time.Duration(sec)*time.Second + time.Duration(nsec)
	if s[0] == '-' {
		d = -d
	}
	return d, nil
}

// ClientTime returns Time as a time.Time, to the nanosecond (digits past
// the ninth decimal are ignored, as servers do).
func (a AT) ClientTime() (time.Time, error) {
	sec, nsec, ok := parseSeconds(a.Time)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: bad client time %q", ErrProtocol, a.Time)
	}
	return time.Unix(sec, nsec), nil
}

// parseSeconds parses D+ or D+.D+ into whole seconds and nanoseconds.
func parseSeconds(s string) (sec, nsec int64, ok bool) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || strings.Contains(s, ".") && frac == "" {
		return 0, 0, false
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
	}
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	for i := range 9 {
		nsec *= 10
		if i < len(frac) {
			nsec += int64(frac[i] - '0')
		}
	}
	return sec, nsec, true
}

// parseAT splits an AT line into its fields: exactly six, separated by
// single spaces, the first "AT".
func parseAT(line string) (AT, bool) {
	f := strings.Split(line, " ")
	if len(f) != 6 || f[0] != "AT" {
		return AT{}, false
	}
	for _, s := range f {
		if s == "" || strings.ContainsFunc(s, isSpace) {
			return AT{}, false
		}
	}
	return AT{Line: line, Server: f[1], Skew: f[2], Client: f[3], Location: f[4], Time: f[5]}, true
}

// Nearby is a WHATSAT reply: the client's stored AT line and the Places
// document the server sent for it.
type Nearby struct {
	// AT is the client's record, as the server that received its latest
	// IAMAT wrote it.
	AT AT
	// JSON is the Places document exactly as the server sent it (results
	// cut to the bound, no trailing newline). It is valid JSON.
	JSON json.RawMessage
}

// Bytes returns the whole reply exactly as the server sent it: the AT
// line, a newline, the JSON and two newlines.
func (n *Nearby) Bytes() []byte {
	b := make([]byte, 0, len(n.AT.Line)+len(n.JSON)+3)
	b = append(b, n.AT.Line...)
	b = append(b, '\n')
	b = append(b, n.JSON...)
	return append(b, "\n\n"...)
}

// FormatTime writes t as IAMAT's client time: POSIX seconds with nine
// decimals, e.g. "1520023934.918963997". Times before 1970 have no
// protocol form; FormatTime returns "" for them.
func FormatTime(t time.Time) string {
	sec := t.Unix()
	if sec < 0 {
		return ""
	}
	return fmt.Sprintf("%d.%09d", sec, t.Nanosecond())
}

// Dialer opens connections to herd servers. The zero value dials plain TCP
// with the standard library's defaults.
type Dialer struct {
	// DialContext opens the byte stream; nil means a zero net.Dialer's
	// DialContext. Set it for TLS, proxies or in-memory networks.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxReplyBytes bounds one reply; zero means DefaultMaxReplyBytes. A
	// longer reply fails its call with ErrProtocol and closes the
	// connection.
	MaxReplyBytes int
}

// Dial connects to the herd server at addr (host:port) with the zero
// [Dialer]. ctx bounds the dial only; the connection lives until
// [Conn.Close].
func Dial(ctx context.Context, addr string) (*Conn, error) {
	var d Dialer
	return d.Dial(ctx, addr)
}

// NewConn returns a [Conn] speaking over nc, which it owns from then on,
// with the zero [Dialer]'s settings.
func NewConn(nc net.Conn) *Conn {
	var d Dialer
	return d.NewConn(nc)
}

// Dial connects to the herd server at addr (host:port). It blocks until
// the connection is open or ctx is done; ctx bounds the dial only.
func (d *Dialer) Dial(ctx context.Context, addr string) (*Conn, error) {
	dial := d.DialContext
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", addr, err)
	}
	return d.NewConn(nc), nil
}

// NewConn returns a [Conn] speaking over nc, which it owns from then on
// ([Conn.Close] closes it). It starts the connection's reader goroutine.
func (d *Dialer) NewConn(nc net.Conn) *Conn {
	limit := d.MaxReplyBytes
	if limit <= 0 {
		limit = DefaultMaxReplyBytes
	}
	c := &Conn{
		nc:         nc,
		maxReply:   limit,
		wlock:      make(chan struct{}, 1),
		readerDone: make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// Conn is a connection to one herd server. All methods are safe for
// concurrent use, and calls may overlap: each call queues its request
// behind the others and waits for its own reply.
//
// # Cancellation
//
// A call whose ctx is done before its request is written returns
// ctx.Err() and sends nothing. A call whose ctx ends while it waits for
// its reply returns ctx.Err() at once; the server still answers the
// command it received (an IAMAT still takes effect), and when that reply
// arrives the connection's reader reads it and discards it, so the
// replies of later calls still match. A ctx that ends while the request
// is being written (the server is not reading) stops the write: if none
// of the request was sent the connection stays usable; if part of it was,
// the connection is closed, since the server would see a broken command.
type Conn struct {
	nc       net.Conn
	maxReply int

	// wlock is the write lock, a channel so that waiting for it respects
	// the caller's ctx. Requests enter the queue and the wire in the
	// order calls take it.
	wlock chan struct{}

	mu    sync.Mutex
	queue []*call // calls whose requests were sent, oldest first
	err   error   // why the connection broke, once it has

	readerDone chan struct{}
}

type kind uint8

const (
	kindIAMAT kind = iota
	kindWHATSAT
)

// call is one request waiting for its reply. The reader fills in the
// result and closes done.
type call struct {
	kind   kind
	done   chan struct{}
	at     AT
	nearby *Nearby
	err    error
}

// IAMAT reports that clientID is at location at time t, and returns the AT
// reply. t is sent as [FormatTime] writes it, so it must not be before
// 1970. See [Conn.IAMATText].
func (c *Conn) IAMAT(ctx context.Context, clientID, location string, t time.Time) (AT, error) {
	s := FormatTime(t)
	if s == "" {
		return AT{}, fmt.Errorf("%w: time %v is before 1970", ErrBadRequest, t)
	}
	return c.IAMATText(ctx, clientID, location, s)
}

// IAMATText sends "IAMAT clientID location clientTime" and returns the
// server's AT line. The arguments are sent exactly as given; each must be
// non-empty and free of white space, or the call returns ErrBadRequest
// without sending anything. The server checks the location
// ([+-]D+.D+[+-]D+.D+) and time (D+ or D+.D+) and answers "? " for bad
// ones: the call then returns an [*InvalidError].
//
// When the server already holds a newer report of clientID (or this one),
// the reply is its stored AT line, which may differ from what was sent.
//
// IAMATText blocks until the reply arrives, the connection breaks, or ctx
// is done; see the Cancellation section of [Conn].
func (c *Conn) IAMATText(ctx context.Context, clientID, location, clientTime string) (AT, error) {
	line, err := command("IAMAT", clientID, location, clientTime)
	if err != nil {
		return AT{}, err
	}
	cl, err := c.roundTrip(ctx, kindIAMAT, line)
	if err != nil {
		return AT{}, err
	}
	return cl.at, nil
}

// WHATSAT asks what is within radiusKm kilometres of clientID, at most
// bound results, and returns the reply. radiusKm is sent in plain decimal
// (10.5 as "10.5", never "1.05e+01"); servers accept 0 < radiusKm <= 50
// and 0 <= bound <= 20. See [Conn.WHATSATText].
func (c *Conn) WHATSAT(ctx context.Context, clientID string, radiusKm float64, bound int) (*Nearby, error) {
	return c.WHATSATText(ctx, clientID, strconv.FormatFloat(radiusKm, 'f', -1, 64), strconv.Itoa(bound))
}

// WHATSATText sends "WHATSAT clientID radiusKm bound" with the arguments
// exactly as given (each non-empty and free of white space, or the call
// returns ErrBadRequest without sending anything) and returns the reply.
// An unknown client or a bad radius or bound gets "? " from the server:
// the call then returns an [*InvalidError]. A bound of 0 asks no provider:
// "WHATSAT client 1 0" is a cheap way to read a server's record of a
// client.
//
// A provider failure is not an error: the reply's JSON then has status
// "UNKNOWN_ERROR" and an "error_message". WHATSATText blocks until the
// reply arrives (the server may wait for its provider), the connection
// breaks, or ctx is done; see the Cancellation section of [Conn].
func (c *Conn) WHATSATText(ctx context.Context, clientID, radiusKm, bound string) (*Nearby, error) {
	line, err := command("WHATSAT", clientID, radiusKm, bound)
	if err != nil {
		return nil, err
	}
	cl, err := c.roundTrip(ctx, kindWHATSAT, line)
	if err != nil {
		return nil, err
	}
	return cl.nearby, nil
}

// Close closes the connection. Calls waiting for replies and later calls
// return ErrClosed. Close waits for the connection's reader goroutine to
// exit; it is idempotent and returns nil.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	<-c.readerDone
	return nil
}

// RemoteAddr returns the server's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// isSpace reports whether r separates fields in the protocol: space, tab,
// CR, LF, form feed or vertical tab.
func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\r' || r == '\n' || r == '\f' || r == '\v'
}

// command builds the request line "verb a b c\n", refusing arguments that
// would not arrive as exactly those four fields.
func command(verb string, args ...string) ([]byte, error) {
	names := [...]string{"client ID", "second argument", "third argument"}
	if verb == "IAMAT" {
		names[1], names[2] = "location", "time"
	} else {
		names[1], names[2] = "radius", "bound"
	}
	n := len(verb) + 1
	for i, a := range args {
		switch {
		case a == "":
			return nil, fmt.Errorf("%w: %s %s is empty", ErrBadRequest, verb, names[i])
		case strings.ContainsFunc(a, isSpace):
			return nil, fmt.Errorf("%w: %s %s %q contains white space", ErrBadRequest, verb, names[i], a)
		}
		n += len(a) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, verb...)
	for _, a := range args {
		b = append(b, ' ')
		b = append(b, a...)
	}
	return append(b, '\n'), nil
}

// roundTrip sends one request and waits for its reply.
func (c *Conn) roundTrip(ctx context.Context, k kind, line []byte) (*call, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case c.wlock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cl := &call{kind: k, done: make(chan struct{})}
	c.mu.Lock()
	if err := c.err; err != nil {
		c.mu.Unlock()
		<-c.wlock
		return nil, err
	}
	// Queue before writing: the reply may arrive before Write returns.
	c.queue = append(c.queue, cl)
	c.mu.Unlock()
	err := c.write(ctx, cl, line)
	<-c.wlock
	if err != nil {
		return nil, err
	}
	select {
	case <-cl.done:
		return cl, cl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// longAgo is a deadline in the past: setting it interrupts a blocked
// Write.
var longAgo = time.Unix(1, 0)

// write writes cl's request line; the caller holds the write lock and has
// queued cl. If ctx ends first the write is interrupted (see the
// Cancellation section of Conn).
func (c *Conn) write(ctx context.Context, cl *call, line []byte) error {
	stop := func() bool { return true }
	var fired chan struct{}
	if ctx.Done() != nil {
		fired = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			c.nc.SetWriteDeadline(longAgo)
			close(fired)
		})
	}
	n, err := c.nc.Write(line)
	if !stop() {
		<-fired
		c.nc.SetWriteDeadline(time.Time{})
	}
	if err == nil {
		return nil
	}
	interrupted := ctx.Err() != nil
	if interrupted && n == 0 && c.unqueue(cl) {
		return ctx.Err() // nothing sent: the connection is still good
	}
	if interrupted {
		c.fail(fmt.Errorf("%w: a request was cut short by its context (%v)", ErrClosed, ctx.Err()))
		return ctx.Err()
	}
	return c.fail(fmt.Errorf("client: writing request: %w", err))
}

// unqueue removes cl, the newest queued call, whose request was not sent.
// It reports false if cl is no longer there (the connection broke, or the
// reader took it for data the server sent unasked).
func (c *Conn) unqueue(cl *call) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 || c.queue[len(c.queue)-1] != cl {
		return false
	}
	c.queue[len(c.queue)-1] = nil
	c.queue = c.queue[:len(c.queue)-1]
	return true
}

// fail records err as the reason the connection broke, unless one is
// already recorded, closes the connection, and returns the recorded
// reason. The reader then fails every queued call with it.
func (c *Conn) fail(err error) error {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	err = c.err
	c.mu.Unlock()
	c.nc.Close()
	return err
}

// readLoop reads replies and hands each to the oldest queued call, until
// the connection breaks; then it fails the remaining calls.
func (c *Conn) readLoop() {
	defer close(c.readerDone)
	br := bufio.NewReader(c.nc)
	for {
		if _, err := br.Peek(1); err != nil {
			if err == io.EOF {
				err = fmt.Errorf("client: server closed the connection: %w", io.ErrUnexpectedEOF)
			} else {
				err = fmt.Errorf("client: reading reply: %w", err)
			}
			c.fail(err)
			break
		}
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			c.fail(fmt.Errorf("%w: server sent data nobody asked for", ErrProtocol))
			break
		}
		cl := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.mu.Unlock()
		if err := c.readReply(br, cl); err != nil {
			cl.err = c.fail(err)
			close(cl.done)
			break
		}
		close(cl.done)
	}
	c.mu.Lock()
	q, err := c.queue, c.err
	c.queue = nil
	c.mu.Unlock()
	for _, cl := range q {
		cl.err = err
		close(cl.done)
	}
}

// readReply reads cl's reply into cl. It returns an error only when the
// connection cannot go on; an invalid or malformed reply that was read
// whole is cl.err.
func (c *Conn) readReply(br *bufio.Reader, cl *call) error {
	budget := c.maxReply
	first, err := readLine(br, &budget)
	if err != nil {
		return err
	}
	line := string(first)
	if strings.HasPrefix(line, "? ") {
		cl.err = &InvalidError{Line: line}
		return nil
	}
	if !strings.HasPrefix(line, "AT ") {
		return fmt.Errorf("%w: reply %q is neither an AT line nor \"? \"", ErrProtocol, truncate(line))
	}
	at, ok := parseAT(line)
	if !ok {
		cl.err = fmt.Errorf("%w: malformed AT line %q", ErrProtocol, truncate(line))
	}
	if cl.kind == kindIAMAT {
		cl.at = at
		return nil
	}
	// WHATSAT: the JSON, then an empty line. A herd server never sends
	// an empty line inside the JSON.
	var doc []byte
	for {
		l, err := readLine(br, &budget)
		if err != nil {
			return err
		}
		if len(l) == 0 {
			break
		}
		if doc != nil {
			doc = append(doc, '\n')
		}
		doc = append(doc, l...)
	}
	if cl.err != nil {
		return nil
	}
	if !json.Valid(doc) {
		cl.err = fmt.Errorf("%w: WHATSAT reply for %q holds invalid JSON (%d bytes)", ErrProtocol, at.Client, len(doc))
		return nil
	}
	cl.nearby = &Nearby{AT: at, JSON: doc}
	return nil
}

// readLine reads one line and returns it without its newline, charging
// its length to budget. A line cut short by EOF is io.ErrUnexpectedEOF.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		*budget -= len(frag)
		if *budget < 0 {
			return nil, fmt.Errorf("%w: reply longer than the limit", ErrProtocol)
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			return nil, fmt.Errorf("client: server closed the connection in the middle of a reply: %w", io.ErrUnexpectedEOF)
		default:
			return nil, fmt.Errorf("client: reading reply: %w", err)
		}
	}
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const limit = 120
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
