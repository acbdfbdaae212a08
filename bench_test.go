package herd

// bench_test.go: benchmarks of the node's hot paths, from parsing one line
// to a five-server herd over loopback. docs/performance.md has the figures
// and the commands that reproduce them. message_test.go has the parse and
// format benchmarks of IAMAT and AT lines (BenchmarkParseIAMAT,
// BenchmarkAppendAT, BenchmarkParseAT); the ones here cover the rest.
//
//	go test -run '^$' -bench . -benchmem
//	go test -run '^$' -bench Herd2018IAMAT -cpuprofile cpu.out
//	go tool pprof -top -tagignore bench=client herd.test cpu.out

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	benchIAMAT    = "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"
	benchWHATSAT  = "WHATSAT kiwi.cs.ucla.edu 10.5871263 20"
	benchLocation = "+34.068930-118.445127"
)

var (
	benchSinkBool   bool
	benchSinkInt    int
	benchSinkBytes  []byte
	benchSinkRecord Record
	benchSinkFloat  float64
)

// benchRecord returns the record of the IAMAT line at recv on server.
func benchRecord(tb testing.TB, server, line string, recv time.Time) Record {
	tb.Helper()
	var f fieldList
	m, ok := parseIAMAT(&f, splitFields([]byte(line), &f))
	if !ok {
		tb.Fatalf("bad IAMAT %q", line)
	}
	return newRecord(string(appendAT(nil, server, recv, &m)), server, &m)
}

// clientRecord is benchIAMAT's record for client i ("client-i").
func clientRecord(tb testing.TB, i int, recv time.Time) Record {
	return benchRecord(tb, "Goloman", strings.Replace(benchIAMAT, "kiwi.cs.ucla.edu", "client-"+strconv.Itoa(i), 1), recv)
}

// --- Parsing and formatting -------------------------------------------

func BenchmarkParseWHATSAT(b *testing.B) {
	line := []byte(benchWHATSAT + "\n")
	var f fieldList
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		n := splitFields(line, &f)
		_, benchSinkBool = parseWHATSAT(&f, n)
	}
	if !benchSinkBool {
		b.Fatal("parseWHATSAT failed")
	}
}

// BenchmarkIAMATLine is everything a session does to one IAMAT line apart
// from the table: split, verb, parse, AT line, the record's string (the
// one allocation an IAMAT needs) and the newline.
func BenchmarkIAMATLine(b *testing.B) {
	line := []byte(benchIAMAT)
	recv := time.Unix(1520023935, 182837383)
	out := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		var f fieldList
		n := splitFields(line, &f)
		if cmdName(f[0]) != "IAMAT" {
			b.Fatal("verb")
		}
		m, ok := parseIAMAT(&f, n)
		if !ok {
			b.Fatal("parse")
		}
		out = appendAT(out[:0], "Goloman", recv, &m)
		benchSinkRecord = newRecord(string(out), "Goloman", &m)
		out = append(out, '\n')
	}
}

func BenchmarkAppendInvalid(b *testing.B) {
	line := []byte("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 yesterday")
	out := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		out = appendInvalid(out[:0], line)
	}
}

// BenchmarkParseLocation is the WHATSAT path's conversion of a stored
// location to degrees for the provider query.
func BenchmarkParseLocation(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchSinkFloat, _, benchSinkBool = parseLocation(benchLocation)
	}
}

func BenchmarkRecordCompare(b *testing.B) {
	recv := time.Unix(1520023935, 182837383)
	r1 := benchRecord(b, "Goloman", benchIAMAT, recv)
	r2 := benchRecord(b, "Hands", benchIAMAT, recv) // same time: the line breaks the tie
	b.ReportAllocs()
	for b.Loop() {
		benchSinkInt = r1.Compare(&r2)
	}
}

// BenchmarkLineReader splits a pipelined stream of IAMAT lines the way a
// session reads it: its buffer starts at 512 bytes, so one read returns
// about seven lines.
func BenchmarkLineReader(b *testing.B) {
	line := []byte(benchIAMAT + "\n")
	src := &benchRepeatReader{data: bytes.Repeat(line, 1024)}
	lr := newLineReader(src, DefaultMaxLineBytes)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		l, ok := lr.next()
		for !ok {
			if err := lr.fill(); err != nil {
				b.Fatal(err)
			}
			l, ok = lr.next()
		}
		benchSinkInt = len(l)
	}
	b.ReportMetric(float64(src.reads)/float64(b.N), "reads/op")
}

// benchRepeatReader reads data over and over, as much as fits each time.
type benchRepeatReader struct {
	data  []byte
	off   int
	reads int
}

func (r *benchRepeatReader) Read(p []byte) (int, error) {
	r.reads++
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

// --- The table ----------------------------------------------------------

// BenchmarkTableOffer offers records to the bare table (no lock, no
// fan-out): a new client each time, a newer report of a known client (in
// tables of one and of 100,000 clients), and a stale report.
//
// Each client's record comes from its own IAMAT: the table files a
// record under the client its AT line names, so a Record whose Client
// field alone was changed would be a new client at every offer.
func BenchmarkTableOffer(b *testing.B) {
	recv := time.Unix(1520023935, 182837383)
	base := benchRecord(b, "Goloman", benchIAMAT, recv)

	b.Run("new", func(b *testing.B) {
		const pool = 1 << 16
		recs := make([]Record, pool)
		for i := range recs {
			recs[i] = clientRecord(b, i, recv)
		}
		t := newTable(hashKey{})
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			if i == pool {
				b.StopTimer()
				t, i = newTable(hashKey{}), 0
				b.StartTimer()
			}
			if _, res := t.offer(&recs[i], DefaultMaxClients); res != offerChanged {
				b.Fatal(res)
			}
			i++
		}
	})

	for _, clients := range []int{1, 100_000} {
		b.Run(fmt.Sprintf("update/clients=%d", clients), func(b *testing.B) {
			t := newTable(hashKey{})
			recs := make([]Record, clients)
			for i := range recs {
				recs[i] = clientRecord(b, i, recv)
				t.offer(&recs[i], DefaultMaxClients)
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				r := &recs[i]
				r.Sec++ // a newer report
				if _, res := t.offer(r, DefaultMaxClients); res != offerChanged {
					b.Fatal(res)
				}
				if i++; i == clients {
					i = 0
				}
			}
		})
	}

	b.Run("stale", func(b *testing.B) {
		t := newTable(hashKey{})
		t.offer(&base, DefaultMaxClients)
		b.ReportAllocs()
		for b.Loop() {
			if _, res := t.offer(&base, DefaultMaxClients); res != offerStale {
				b.Fatal(res)
			}
		}
	})
}

// BenchmarkTableWarm measures a link's records at a million clients, each
// a newer record of a known client, taken as linkReader takes them (holds,
// then offer) in batches of warmBatch lines: "cold" one at a time, "warm"
// after table.warm has fetched the batch's memory together. ns/op is per
// record.
func BenchmarkTableWarm(b *testing.B) {
	const clients = 1 << 20
	tab := newTable(hashKey{3, 4})
	line := func(i, sec int) string {
		return fmt.Sprintf("AT Hands +0.100000000 client-%07d +34.068930-118.445127 %d.5", i, sec)
	}
	for i := range clients {
		r, _ := parseAT([]byte(line(i, 1)))
		tab.offer(&r, clients)
	}
	// Batches of lines for clients in a scattered order, as many as a
	// link's reads would bring; made anew, newer, for every round.
	const batches = 1 << 12
	bufs := make([][]byte, batches)
	round := 1
	newRound := func() {
		round++
		for k := range bufs {
			buf := bufs[k][:0]
			for j := range warmBatch {
				i := (k*warmBatch + j) * 7919 % clients
				buf = append(buf, line(i, round)...)
				buf = append(buf, '\n')
			}
			bufs[k] = buf
		}
	}
	for _, warm := range []bool{false, true} {
		b.Run(map[bool]string{false: "cold", true: "warm"}[warm], func(b *testing.B) {
			newRound()
			k := 0
			var f fieldList
			for b.Loop() {
				if k == batches {
					b.StopTimer()
					newRound()
					k = 0
					b.StartTimer()
				}
				buf := bufs[k]
				k++
				if warm {
					tab.warm(buf, 3)
				}
				for len(buf) > 0 {
					end := bytes.IndexByte(buf, '\n')
					l := buf[:end]
					buf = buf[end+1:]
					nf := splitFields(l, &f)
					if tab.holds(f[3], l) {
						b.Fatalf("a new record taken for a duplicate: %q", l)
					}
					r, ok := parseATFields(l, &f, nf)
					if !ok {
						b.Fatalf("bad line %q", l)
					}
					if _, res := tab.offer(&r, clients); res != offerChanged {
						b.Fatalf("offer(%q) = %v, want offerChanged", l, res)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*warmBatch), "ns/record")
		})
	}
}

// --- The node's offer path and fan-out ----------------------------------

// benchLinks are fake up links registered on a node: their queues are
// emptied by drain (or, with drainers, by one goroutine per link, which is
// what linkWriter does, without the I/O).
type benchLinks struct {
	n     *Node
	links []*link
	wg    sync.WaitGroup
}

// benchFakeLinks registers up links to the named peers on n.
func benchFakeLinks(n *Node, drainers bool, peers ...string) *benchLinks {
	bl := &benchLinks{n: n}
	for _, p := range peers {
		c := &chunkConn{}
		l := newLink(p, &session{n: n, c: c, st: &connState{id: p + "#1", c: c}, id: p + "#1"})
		bl.links = append(bl.links, l)
		if drainers {
			bl.wg.Add(1)
			go func() {
				defer bl.wg.Done()
				for {
					select {
					case <-l.wake:
						bl.take(l)
					case <-l.done:
						return
					}
				}
			}()
		}
	}
	n.mu.Lock()
	for _, l := range bl.links {
		n.addLink(l)
	}
	n.mu.Unlock()
	return bl
}

// take takes what l owes, as its writer would, without writing it.
func (bl *benchLinks) take(l *link) {
	var buf []byte
	for more := true; more; {
		bl.n.mu.Lock()
		buf, more = bl.n.fillBatch(l, buf[:0])
		bl.n.mu.Unlock()
	}
}

// drain empties every link's backlog.
func (bl *benchLinks) drain() {
	for _, l := range bl.links {
		bl.take(l)
	}
}

// stop unregisters the links and stops the drainers.
func (bl *benchLinks) stop() {
	bl.n.mu.Lock()
	bl.n.links = nil
	bl.n.mu.Unlock()
	for _, l := range bl.links {
		l.stop()
	}
	bl.wg.Wait()
}

func benchNewNode(tb testing.TB, cfg Config) *Node {
	tb.Helper()
	if cfg.Name == "" {
		cfg.Name = "Goloman"
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	n, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

// BenchmarkNodeOffer is Node.offer, the table under the node's lock plus
// the fan-out to up links: a local report with no links and with three
// (Goloman's neighbours in the 2018 herd), a peer's record with three
// links (flooded to the other two), a stale report, and local reports
// from two parallel client sessions (lock contention). The link queues
// are emptied with the timer stopped, so the figures are the sender's
// side of the channel sends, without waking a receiver (BenchmarkSession
// and the loopback benchmarks include that).
func BenchmarkNodeOffer(b *testing.B) {
	recv := time.Unix(1520023935, 182837383)
	base := benchRecord(b, "Goloman", benchIAMAT, recv)
	for _, tc := range []struct {
		name  string
		links []string
		from  string
	}{
		{"local/links=0", nil, ""},
		{"local/links=3", []string{"Hands", "Holiday", "Wilkes"}, ""},
		{"peer/links=3", []string{"Hands", "Holiday", "Wilkes"}, "Hands"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n := benchNewNode(b, Config{})
			bl := benchFakeLinks(n, false, tc.links...)
			r := base
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				if i++; i%1024 == 0 {
					b.StopTimer()
					bl.drain()
					b.StartTimer()
				}
				r.Sec++
				if _, res := n.offer(r, tc.from); res != offerChanged {
					b.Fatal(res)
				}
			}
			b.StopTimer()
			bl.stop()
		})
	}
	b.Run("stale/links=3", func(b *testing.B) {
		n := benchNewNode(b, Config{})
		bl := benchFakeLinks(n, false, "Hands", "Holiday", "Wilkes")
		defer bl.stop()
		n.offer(base, "")
		bl.drain()
		b.ReportAllocs()
		for b.Loop() {
			if _, res := n.offer(base, ""); res != offerStale {
				b.Fatal(res)
			}
		}
	})
	b.Run("local-parallel/links=0", func(b *testing.B) {
		n := benchNewNode(b, Config{})
		var id atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := base
			r.Client = "client-" + strconv.FormatInt(id.Add(1), 10)
			for pb.Next() {
				r.Sec++
				if _, res := n.offer(r, ""); res != offerChanged {
					b.Error(res)
					return
				}
			}
		})
	})
}

// --- A whole client session in memory -------------------------------------

// benchConn is a client connection in memory: its reads return lines made
// by gen, batch lines per read, until total lines have been read, then
// EOF; its writes are counted and discarded.
type benchConn struct {
	gen     func(dst []byte, i int) []byte
	total   int
	batch   int
	i       int
	buf     []byte
	pending []byte
	writes  int
	written int64
}

func (c *benchConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		if c.i == c.total {
			return 0, io.EOF
		}
		c.buf = c.buf[:0]
		for k := 0; k < c.batch && c.i < c.total; k++ {
			c.buf = c.gen(c.buf, c.i)
			c.i++
		}
		c.pending = c.buf
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *benchConn) Write(p []byte) (int, error) {
	c.writes++
	c.written += int64(len(p))
	return len(p), nil
}

func (c *benchConn) Close() error                     { return nil }
func (c *benchConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *benchConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *benchConn) SetDeadline(time.Time) error      { return nil }
func (c *benchConn) SetReadDeadline(time.Time) error  { return nil }
func (c *benchConn) SetWriteDeadline(time.Time) error { return nil }

// benchIAMATGen makes IAMAT line i: client i%clients, with a time that
// increases with i, so every line is a new report.
func benchIAMATGen(clients int) func([]byte, int) []byte {
	prefixes := make([][]byte, clients)
	for k := range prefixes {
		prefixes[k] = []byte("IAMAT kiwi-" + strconv.Itoa(k) + " " + benchLocation + " ")
	}
	return func(dst []byte, i int) []byte {
		dst = append(dst, prefixes[i%clients]...)
		dst = strconv.AppendInt(dst, 1520023934+int64(i/1000000000), 10)
		dst = append(dst, '.')
		ns := strconv.Itoa(1000000000 + i%1000000000) // nine digits after the leading 1
		dst = append(dst, ns[1:]...)
		return append(dst, '\n')
	}
}

// BenchmarkSession runs serveConn, the whole client session (read, split,
// parse, offer, format, log checks, flush), over an in-memory connection
// for b.N lines; ns/op is per line. "pipeline" is the lines each read
// returns: 1 is a client that waits for every reply, 16 one that keeps 16
// requests in flight. The gen sub-benchmark is the cost of making the
// input alone, to subtract.
func BenchmarkSession(b *testing.B) {
	whatsat0 := func(dst []byte, i int) []byte {
		if i == 0 {
			return append(dst, "IAMAT kiwi-0 "+benchLocation+" 1520023934.918963997\n"...)
		}
		return append(dst, "WHATSAT kiwi-0 10 0\n"...)
	}
	whatsat20 := func(dst []byte, i int) []byte {
		if i == 0 {
			return append(dst, "IAMAT kiwi-0 "+benchLocation+" 1520023934.918963997\n"...)
		}
		return append(dst, "WHATSAT kiwi-0 10 20\n"...)
	}
	stale := func(dst []byte, i int) []byte {
		return append(dst, "IAMAT kiwi-0 "+benchLocation+" 1520023934.918963997\n"...)
	}
	invalid := func(dst []byte, i int) []byte {
		return append(dst, "IAMAT kiwi-0 "+benchLocation+" yesterday\n"...)
	}
	doc := benchDoc20(b)
	places := PlacesFunc(func(context.Context, NearbyQuery) ([]byte, error) { return doc, nil })
	for _, tc := range []struct {
		name  string
		gen   func([]byte, int) []byte
		links int
	}{
		{"iamat-new", benchIAMATGen(1), 0},
		{"iamat-new-1000-clients", benchIAMATGen(1000), 0},
		{"iamat-new/links=3", benchIAMATGen(1), 3},
		{"iamat-stale", stale, 0},
		{"whatsat-bound0", whatsat0, 0},
		{"whatsat-bound20", whatsat20, 0},
		{"invalid", invalid, 0},
	} {
		for _, pipeline := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/pipeline=%d", tc.name, pipeline), func(b *testing.B) {
				// No Places limits: the figure is the provider path's.
				n := benchNewNode(b, Config{Places: places, PlacesLimits: noPlacesLimits})
				var bl *benchLinks
				if tc.links > 0 {
					bl = benchFakeLinks(n, true, "Hands", "Holiday", "Wilkes")
				}
				c := &benchConn{gen: tc.gen, total: b.N, batch: pipeline}
				b.ReportAllocs()
				b.ResetTimer()
				n.serveConn(c, &connState{id: "c1", c: c})
				n.wg.Wait() // the session goes on in handed-off goroutines
				b.StopTimer()
				if bl != nil {
					bl.stop()
				}
				b.ReportMetric(float64(c.writes)/float64(b.N), "writes/op")
				if st := n.Stats(); st.IAMAT+st.WHATSAT+st.Invalid != uint64(b.N) {
					b.Fatalf("%d lines, stats %+v", b.N, st)
				}
			})
		}
	}
	b.Run("gen", func(b *testing.B) {
		c := &benchConn{gen: benchIAMATGen(1), total: b.N, batch: 16}
		buf := make([]byte, 512)
		b.ReportAllocs()
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
	})
}

// --- WHATSAT formatting -----------------------------------------------------

// benchDoc20 builds a legacy Nearby Search document with 20 results, in
// Google's layout, from the fixture's three results.
func benchDoc20(tb testing.TB) []byte {
	tb.Helper()
	raw, err := os.ReadFile("testdata/nearby_legacy_google_layout.json")
	if err != nil {
		tb.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var open, closing int
	var results []json.RawMessage
	depth := 0
	for open == 0 {
		tok, err := dec.Token()
		if err != nil {
			tb.Fatal(err)
		}
		switch tok {
		case json.Delim('{'):
			depth++
		case "results":
			if depth == 1 {
				if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
					tb.Fatalf("results: %v %v", tok, err)
				}
				open = int(dec.InputOffset())
			}
		}
	}
	for dec.More() {
		var r json.RawMessage
		if err := dec.Decode(&r); err != nil {
			tb.Fatal(err)
		}
		results = append(results, r)
	}
	if _, err := dec.Token(); err != nil { // ']'
		tb.Fatal(err)
	}
	closing = int(dec.InputOffset()) - 1
	var doc []byte
	doc = append(doc, raw[:open]...)
	for i := 0; i < 20; i++ {
		if i > 0 {
			doc = append(doc, ',')
		}
		doc = append(doc, "\n      "...)
		doc = append(doc, results[i%len(results)]...)
	}
	doc = append(doc, "\n   "...)
	doc = append(doc, raw[closing:]...)
	var check struct{ Results []json.RawMessage }
	if err := json.Unmarshal(doc, &check); err != nil || len(check.Results) != 20 {
		tb.Fatalf("built document: %v, %d results", err, len(check.Results))
	}
	return doc
}

// BenchmarkWhatsatJSON formats a WHATSAT body from a 20-result legacy
// document (about 30 KB): cut to 20 (nothing cut) and to 5.
func BenchmarkWhatsatJSON(b *testing.B) {
	doc := benchDoc20(b)
	for _, bound := range []int{20, 5} {
		b.Run(fmt.Sprintf("results=20/bound=%d", bound), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				benchSinkBytes = whatsatJSON(doc, bound)
			}
			if benchSinkBytes == nil {
				b.Fatal("whatsatJSON refused the document")
			}
		})
	}
	// The node's path for a document it has seen (a Frugal cache hit):
	// a checksum and a comparison instead of validating and cutting.
	b.Run("results=20/bound=5/memo-hit", func(b *testing.B) {
		var m bodyMemo
		want := m.whatsat(doc, 5)
		b.ReportAllocs()
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			benchSinkBytes = m.whatsat(doc, 5)
		}
		if !bytes.Equal(benchSinkBytes, want) {
			b.Fatal("memo answered another body")
		}
	})
}

// --- A five-server herd over loopback ---------------------------------------

// benchHerd starts the 2018 herd on loopback with default settings (the
// system clock, no log) and waits until every link is up.
func benchHerd(tb testing.TB) map[string]*Node {
	tb.Helper()
	topo := Presets["2018"]
	nodes := map[string]*Node{}
	addrs := map[string]string{}
	// Acceptors (names sorting later) start first, so that every dialer
	// knows its neighbours' addresses.
	names := slices.Clone(topo.Servers)
	slices.Sort(names)
	slices.Reverse(names)
	for _, name := range names {
		cfg := Config{Name: name, Addr: "127.0.0.1:0"}
		for _, p := range topo.Neighbours(name) {
			cfg.Peers = append(cfg.Peers, Peer{Name: p, Addr: addrs[p]})
		}
		n := benchNewNode(tb, cfg)
		if err := n.Start(context.Background()); err != nil {
			tb.Fatal(err)
		}
		nodes[name], addrs[name] = n, n.Addr().String()
	}
	for _, name := range names {
		want := len(topo.Neighbours(name))
		benchWait(tb, nodes[name], func(n *Node) bool { return len(n.Links()) == want })
	}
	return nodes
}

// benchWait waits, without sleeping, until cond holds for n.
func benchWait(tb testing.TB, n *Node, cond func(*Node) bool) {
	tb.Helper()
	waitNode(tb, n, "the condition", cond)
}

// benchClient runs one pipelined client connection: it keeps inflight
// IAMATs (each a new report of its own client) outstanding until it has
// had count replies, and returns the last AT line. Its goroutine carries
// the pprof label bench=client, so profiles can leave it out.
func benchClient(addr, client string, count, inflight int, first int64) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	r := bufio.NewReaderSize(c, 64<<10)
	prefix := []byte("IAMAT " + client + " " + benchLocation + " ")
	var out []byte
	sent := 0
	add := func() {
		out = append(out, prefix...)
		t := first + int64(sent)
		out = strconv.AppendInt(out, t/1e9, 10)
		ns := strconv.FormatInt(1e9+t%1e9, 10)
		out = append(append(append(out, '.'), ns[1:]...), '\n')
		sent++
	}
	for sent < min(inflight, count) {
		add()
	}
	var last string
	for got := 0; got < count; {
		if len(out) > 0 && r.Buffered() == 0 {
			if _, err := c.Write(out); err != nil {
				return "", err
			}
			out = out[:0]
		}
		line, err := r.ReadSlice('\n')
		if err != nil {
			return "", err
		}
		if !bytes.HasPrefix(line, []byte("AT ")) {
			return "", fmt.Errorf("reply %q", line)
		}
		got++
		if got == count {
			last = string(line[:len(line)-1])
		}
		if sent < count {
			add()
		}
	}
	return last, nil
}

// BenchmarkHerd2018IAMAT sends pipelined IAMATs to Hands in the 2018 herd
// over loopback, every one a new report that floods to the four other
// servers, and waits until Welsh (three hops away) has every client's
// last record; ns/op is per IAMAT, flood included. The linkdrops metric
// counts links dropped because a neighbour fell PeerQueue records behind
// (then resynchronised when they come back). Everything runs in
// this process on the machine's cores, client included (labelled
// bench=client in CPU profiles).
func BenchmarkHerd2018IAMAT(b *testing.B) {
	nodes := benchHerd(b)
	hands, welsh := nodes["Hands"].Addr().String(), nodes["Welsh"]
	var round atomic.Int64
	for _, tc := range []struct{ conns, inflight int }{{1, 1}, {1, 16}, {32, 16}} {
		b.Run(fmt.Sprintf("conns=%d/inflight=%d", tc.conns, tc.inflight), func(b *testing.B) {
			r := round.Add(1)
			drops0 := benchLinkDrops(nodes)
			first := time.Now().UnixNano()
			lasts := make([]string, tc.conns)
			errs := make([]error, tc.conns)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := 0; i < tc.conns; i++ {
				count := b.N / tc.conns
				if i < b.N%tc.conns {
					count++
				}
				if count == 0 {
					continue
				}
				wg.Add(1)
				go pprof.Do(context.Background(), pprof.Labels("bench", "client"), func(context.Context) {
					defer wg.Done()
					lasts[i], errs[i] = benchClient(hands, fmt.Sprintf("bench-%d-%d", r, i), count, tc.inflight, first)
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
				if lasts[i] == "" {
					continue
				}
				client := fmt.Sprintf("bench-%d-%d", r, i)
				benchWait(b, welsh, func(n *Node) bool {
					rec, ok := n.Lookup(client)
					return ok && rec.Line == lasts[i]
				})
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "replies/s")
			// Links dropped as too slow (queue full) are resynchronised
			// by anti-entropy; the figure then includes that.
			b.ReportMetric(float64(benchLinkDrops(nodes)-drops0), "linkdrops")
			if b.N > 1 {
				// Let every link come back before the next run.
				for name, n := range nodes {
					want := len(Presets["2018"].Neighbours(name))
					benchWait(b, n, func(n *Node) bool { return len(n.Links()) == want })
				}
			}
		})
	}
}

// benchLinkDrops returns how many links the nodes have dropped.
func benchLinkDrops(nodes map[string]*Node) uint64 {
	var drops uint64
	for _, n := range nodes {
		drops += n.Stats().LinkDrops
	}
	return drops
}

// BenchmarkHerd2018Propagation reports a new location at Hands and waits
// until Welsh, three hops away, has it: one op is one report's trip, the
// client's round trip to Hands included. Nothing else loads the herd.
func BenchmarkHerd2018Propagation(b *testing.B) {
	nodes := benchHerd(b)
	welsh := nodes["Welsh"]
	c, err := net.Dial("tcp", nodes["Hands"].Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	client := "prop-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t := time.Now().UnixNano()
	var req []byte
	b.ReportAllocs()
	for b.Loop() {
		t++
		req = append(req[:0], "IAMAT "+client+" "+benchLocation+" "...)
		req = strconv.AppendInt(req, t/1e9, 10)
		ns := strconv.FormatInt(1e9+t%1e9, 10)
		req = append(append(append(req, '.'), ns[1:]...), '\n')
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		line = line[:len(line)-1]
		benchWait(b, welsh, func(n *Node) bool {
			rec, ok := n.Lookup(client)
			return ok && rec.Line == line
		})
	}
}

// --- Memory of idle connections ----------------------------------------------

// BenchmarkIdleConnMemory opens b.N client connections to a node in this
// process and holds them, then reports what the Go runtime holds for
// each: goroutine stack and heap after a GC (the client ends' net.Conn
// values, about 0.3 KB each, are in the heap figure too). "touched"
// connections have each served one line. Run it with a fixed count:
//
//	go test -run '^$' -bench IdleConnMemory -benchtime 4000x
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, tc := range []struct {
		name         string
		touch, parks bool
	}{{"untouched", false, false}, {"touched", true, false}, {"touched-parked", true, true}} {
		touch := tc.touch
		b.Run(tc.name, func(b *testing.B) {
			if b.N > 5000 {
				b.Skipf("b.N = %d: run with -benchtime 4000x (each connection holds two descriptors in this process)", b.N)
			}
			cfg := Config{}
			if tc.parks {
				// The sweeper runs every 250ms and parks a session after
				// one idle sweep (the default would take 7.5 to 15s).
				cfg.IdleTimeout = time.Second
			}
			n := benchNewNode(b, cfg)
			if err := n.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			addr := n.Addr().String()
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			g0 := runtime.NumGoroutine()
			conns := make([]net.Conn, 0, b.N)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := 0; i < b.N; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
			}
			if touch {
				buf := make([]byte, 64)
				for _, c := range conns {
					if _, err := io.WriteString(c, "WHATSAT nobody 1 0\n"); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadAtLeast(c, buf, len("? WHATSAT nobody 1 0\n")); err != nil {
						b.Fatal(err)
					}
				}
			}
			// Wait until every session is running (bounded; a benchmark may
			// poll).
			for deadline := time.Now().Add(20 * time.Second); n.Stats().Conns < int64(b.N) || runtime.NumGoroutine() < g0+b.N; {
				if time.Now().After(deadline) {
					b.Fatalf("%d connections tracked, %d goroutines, want %d more", n.Stats().Conns, runtime.NumGoroutine(), b.N)
				}
				time.Sleep(time.Millisecond)
			}
			for deadline := time.Now().Add(20 * time.Second); tc.parks && n.Stats().Parked < uint64(b.N); {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d sessions parked", n.Stats().Parked, b.N)
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&m1)
			per := func(a, b0 uint64) float64 { return (float64(a) - float64(b0)) / float64(b.N) }
			b.ReportMetric(per(m1.StackInuse, m0.StackInuse), "stack-B/conn")
			b.ReportMetric(per(m1.HeapInuse, m0.HeapInuse), "heap-B/conn")
			b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(b.N), "goroutines/conn")
		})
	}
}

// --- Memory of the table -----------------------------------------------------

// BenchmarkTableMemory offers b.N new clients' records to a node with three
// up links (drained as they fill) and reports the heap the table takes per
// client beyond the record's AT line (made before the count starts): its
// entry and map slot, and its queue positions.
// Run it with a fixed count:
//
//	go test -run '^$' -bench TableMemory -benchtime 100000x
func BenchmarkTableMemory(b *testing.B) {
	n := benchNewNode(b, Config{MaxClients: b.N + 1})
	bl := benchFakeLinks(n, true, "Hands", "Holiday", "Wilkes")
	defer bl.stop()
	recs := make([]Record, b.N)
	for i := range recs {
		line := fmt.Sprintf("AT Goloman +0.263873386 client-%09d +34.068930-118.445127 1520023934.918963997", i)
		r, ok := parseAT([]byte(line))
		if !ok {
			b.Fatalf("parseAT(%q) failed", line)
		}
		recs[i] = r
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ { // not b.Loop: recs must be made for b.N first
		if _, res := n.offer(recs[i], "Hands"); res != offerChanged {
			b.Fatal(res)
		}
		n.flushWakes() // as a session does after each read
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	b.ReportMetric((float64(m1.HeapAlloc)-float64(m0.HeapAlloc))/float64(b.N), "table-B/client")
	runtime.KeepAlive(recs)
	if got := n.Stats().Clients; got != int64(b.N) {
		b.Fatalf("%d clients in the table, want %d", got, b.N)
	}
}

// BenchmarkSnapshotBody measures what a compaction reads from the table:
// every line of a million records, in chunks as writeSnapshotBody takes them.
func BenchmarkSnapshotBody(b *testing.B) {
	const clients = 1 << 20
	tab := newTable(hashKey{5, 6})
	for i := range clients {
		r, _ := parseAT(fmt.Appendf(nil, "AT Hands +0.100000000 client-%07d +34.068930-118.445127 %d.5", i*7919%clients, i))
		tab.offer(&r, clients)
	}
	var buf []byte
	for b.Loop() {
		buf = buf[:0]
		for lo := 0; lo < numShards; lo += 4 {
			buf, _ = tab.appendShardLines(lo, lo+4, buf)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*clients), "ns/record")
}
