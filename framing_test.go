package herd

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// chunkConn is a net.Conn whose reads return the given chunks in order,
// then EOF, and whose writes are recorded one by one. It lets a test drive
// a session without a network.
type chunkConn struct {
	chunks [][]byte
	writes [][]byte
}

func (c *chunkConn) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *chunkConn) Close() error                     { return nil }
func (c *chunkConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *chunkConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *chunkConn) SetDeadline(time.Time) error      { return nil }
func (c *chunkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }

// serveChunks runs one client session over chunks on a fresh node and
// returns the writes it made.
func serveChunks(t testing.TB, maxLine int, chunks [][]byte) [][]byte {
	n, err := New(Config{Name: "Goloman", Addr: "127.0.0.1:0", Clock: kiwiClock(), MaxLineBytes: maxLine})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c := &chunkConn{chunks: chunks}
	n.serveConn(c, &connState{id: "c1", c: c})
	n.wg.Wait() // the session may go on in handed-off goroutines
	return c.writes
}

// splitAt cuts data at the given offsets (taken modulo its length).
func splitAt(data []byte, cuts []byte) [][]byte {
	if len(data) == 0 {
		return nil
	}
	var at []int
	for _, c := range cuts {
		at = append(at, int(c)%len(data))
	}
	var chunks [][]byte
	prev := 0
	for _, a := range sortedInts(at) {
		chunks = append(chunks, data[prev:a])
		prev = a
	}
	return append(chunks, data[prev:])
}

func sortedInts(s []int) []int {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// checkFraming asserts that any split of data gives the same replies as one
// read, and that no write ever holds part of a reply.
func checkFraming(t *testing.T, data, cuts []byte) {
	const maxLine = 128
	whole := serveChunks(t, maxLine, [][]byte{data})
	split := serveChunks(t, maxLine, splitAt(data, cuts))
	if a, b := bytes.Join(whole, nil), bytes.Join(split, nil); !bytes.Equal(a, b) {
		t.Fatalf("replies differ when input is split at %v:\nwhole: %q\nsplit: %q", cuts, a, b)
	}
	for _, w := range split {
		// Every write ends a reply: a line reply ends in "\n" and a
		// WHATSAT reply in "\n\n"; none is cut.
		if len(w) == 0 || w[len(w)-1] != '\n' {
			t.Fatalf("write %q does not end a reply", w)
		}
	}
}

func FuzzFraming(f *testing.F) {
	f.Add([]byte(kiwiIAMAT+"\nWHATSAT kiwi.cs.ucla.edu 10 0\n"), []byte{3, 40, 77})
	f.Add([]byte(kiwiIAMAT+"\r\n\r\nFOO\n"+kiwiAT), []byte{1, 2, 3, 4, 5})
	f.Add([]byte("IAMAT a +1.0+1.0 5\nIAMAT a +1.0+1.0 4\nIAMAT b +1.0+1.0 6"), []byte{20})
	f.Add([]byte(string(make([]byte, 300))+"\nIAMAT a +1.0+1.0 5\n"), []byte{100, 200})
	f.Add([]byte("WHATSAT a 1 0\nIAMAT a +1.0+1.0 5\nWHATSAT a 1 0"), []byte{0, 13, 14})
	f.Fuzz(checkFraming)
}

// TestFramingRandomSplits runs the framing property over many seeded
// random splits of a fixed session, beyond the fuzz seeds.
func TestFramingRandomSplits(t *testing.T) {
	session := []byte(" IAMAT kiwi +34.068930-118.445127 1520023934.918963997\r\n" +
		"WHATSAT kiwi 10 0\n\n\tFOO\v\n" + kiwiAT + "\n" +
		"IAMAT kiwi +34.068930-118.445127 1520023934.918963990\n" +
		string(bytes.Repeat([]byte("z"), 200)) + "\nIAMAT late +0.0+0.0 1")
	for seed := uint64(0); seed < 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		cuts := make([]byte, rng.IntN(12))
		for i := range cuts {
			cuts[i] = byte(rng.IntN(256))
		}
		checkFraming(t, session, cuts)
	}
}

func TestFramingLongLineCutsConnection(t *testing.T) {
	long := bytes.Repeat([]byte("y"), 300)
	got := bytes.Join(serveChunks(t, 128, [][]byte{[]byte(kiwiIAMAT + "\n"), long, []byte("\n" + kiwiIAMAT + "\n")}), nil)
	want := kiwiAT + "\n? " + string(long[:128]) + "\n"
	if string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// tickClock is a Clock that moves one second on at every reading.
type tickClock struct{ testClock }

func (c *tickClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

// TestReceiveTimeIsTheRead: an IAMAT's receive time is when the read that
// completed its line returned, so lines that arrived together share it
// (one clock reading per read) and a later read gives a later time.
func TestReceiveTimeIsTheRead(t *testing.T) {
	clock := &tickClock{testClock{now: time.Unix(100, 0)}}
	n, err := New(Config{Name: "Goloman", Addr: "127.0.0.1:0", Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c := &chunkConn{chunks: [][]byte{
		[]byte("IAMAT a +1.0+1.0 100\nIAMAT b +1.0+1.0 100\nIAMAT c +1.0"),
		[]byte("+1.0 100\n"),
	}}
	n.serveConn(c, &connState{id: "c1", c: c})
	n.wg.Wait()
	got := string(bytes.Join(c.writes, nil))
	// Readings: 101 for the first read, 102 for the second, 103 for the
	// read that finds the end of input.
	want := "AT Goloman +1.000000000 a +1.0+1.0 100\n" +
		"AT Goloman +1.000000000 b +1.0+1.0 100\n" +
		"AT Goloman +2.000000000 c +1.0+1.0 100\n"
	if got != want {
		t.Fatalf("replies:\n%s", cmp.Diff(want, got))
	}
}
