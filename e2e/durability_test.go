package e2e_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proxyherd/herd"
)

// durClients is how many distinct clients the durability test reports.
const durClients = 2000

// durID, durLoc and durTime make client i's reports: report 1 in the
// first wave, report 2 (one million seconds later, so always newer) in
// the second.
func durID(i int) string { return "client" + strconv.Itoa(i) }

const durLoc = "+34.068930-118.445127"

func durTime(i, report int) string {
	return strconv.Itoa(1600000000+i+(report-1)*1000000) + ".5"
}

// durConn is a raw pipelined client connection: a writer, and a reader
// goroutine that hands out reply lines.
type durConn struct {
	c     net.Conn
	lines chan string
	err   chan error
}

func durDial(t *testing.T, addr string) *durConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitBound)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(3 * waitBound))
	d := &durConn{c: c, lines: make(chan string, 4*durClients), err: make(chan error, 1)}
	go func() {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				d.err <- err
				close(d.lines)
				return
			}
			d.lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	t.Cleanup(func() {
		c.Close()
		for range d.lines {
		}
	})
	return d
}

// send writes lines in one write: a pipelined burst.
func (d *durConn) send(t *testing.T, lines []string) {
	t.Helper()
	if _, err := io.WriteString(d.c, strings.Join(lines, "")); err != nil {
		t.Fatalf("write to %s: %v", d.c.RemoteAddr(), err)
	}
}

// next returns the next reply line.
func (d *durConn) next(t *testing.T) string {
	t.Helper()
	line, ok := <-d.lines
	if !ok {
		t.Fatalf("connection to %s ended: %v", d.c.RemoteAddr(), <-d.err)
	}
	return line
}

// iamatReplies reads the replies to the IAMATs of clients ids (report
// report) sent to server, checks each, and records them in got.
func (d *durConn) iamatReplies(t *testing.T, server string, ids []int, report int, got map[string]string) {
	t.Helper()
	for _, i := range ids {
		line := d.next(t)
		want := regexp.MustCompile(`^AT ` + server + ` [+-]\d+\.\d{9} ` + regexp.QuoteMeta(durID(i)+" "+durLoc+" "+durTime(i, report)) + `$`)
		if !want.MatchString(line) {
			t.Fatalf("%s answered IAMAT %s (report %d) with %q", server, durID(i), report, line)
		}
		got[durID(i)] = line
	}
}

// dialer opens a client connection to addr: tcpDial from this process's
// network, or one from inside a network namespace (netns_test.go).
type dialer func(addr string) (net.Conn, error)

func tcpDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

// records reads a server's record of each client with pipelined
// "WHATSAT id 1 0"; an unknown client's entry is "".
func records(addr string, ids []string) (map[string]string, error) {
	return recordsVia(tcpDial, addr, ids)
}

// recordsVia is records over a connection that dial opens.
func recordsVia(dial dialer, addr string, ids []string) (map[string]string, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitBound))
	var req bytes.Buffer
	for _, id := range ids {
		fmt.Fprintf(&req, "WHATSAT %s 1 0\n", id)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(req.Bytes())
		werr <- err
	}()
	out := make(map[string]string, len(ids))
	br := bufio.NewReader(c)
	for _, id := range ids {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("reading the record of %s: %w", id, err)
		}
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "? ") {
			out[id] = ""
			continue
		}
		out[id] = line
		for { // the JSON, up to the empty line that ends the reply
			l, err := br.ReadString('\n')
			if err != nil {
				return nil, fmt.Errorf("reading the reply for %s: %w", id, err)
			}
			if l == "\n" {
				break
			}
		}
	}
	return out, <-werr
}

// waitRecords polls server until its record of every client is want's.
func waitRecords(t *testing.T, server, addr string, want map[string]string) {
	t.Helper()
	waitRecordsVia(t, tcpDial, server, addr, want, waitBound)
}

// waitRecordsVia is waitRecords over connections that dial opens, giving
// up after bound.
func waitRecordsVia(t *testing.T, dial dialer, server, addr string, want map[string]string, bound time.Duration) {
	t.Helper()
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	deadline := time.Now().Add(bound)
	for {
		got, err := recordsVia(dial, addr, ids)
		wrong, example := 0, ""
		if err == nil {
			for _, id := range ids {
				if got[id] != want[id] {
					if wrong++; example == "" {
						example = fmt.Sprintf("%s: has %q, want %q", id, got[id], want[id])
					}
				}
			}
			if wrong == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("%s: records never read within %v: %v", server, bound, err)
			}
			t.Fatalf("%s: %d of %d clients still without their newest record after %v, e.g. %s", server, wrong, len(ids), bound, example)
		}
		time.Sleep(pollPause)
	}
}

// readState reads a server's durable table from disk, as a restart
// would (state.go, wal.go), independently of herd: the snapshot at base
// ("herd-state 2 <count> <sha256 of the body> <first segment not
// covered>" or version 1 without the last field, then one AT line per
// record), then every log segment base.wal.<16 hex digits> it does not
// cover, in order: "herd-wal 1\n", then records framed as a 4-byte
// little-endian length, a 4-byte little-endian CRC-32C of the length and
// the payload, and the payload, an AT line. A segment being written (or
// torn by a crash) ends at its first incomplete or bad record. It
// returns each client's newest record (by client time, then the line, as
// herd orders them) and how many segments it read.
func readState(t *testing.T, base string) (recs map[string]string, segments int) {
	t.Helper()
	recs = map[string]string{}
	var covered uint64
	data, err := os.ReadFile(base)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		t.Fatal(err)
	default:
		header, body, ok := bytes.Cut(data, []byte("\n"))
		f := strings.Fields(string(header))
		switch {
		case ok && len(f) == 5 && f[0]+" "+f[1] == "herd-state 2":
			if covered, err = strconv.ParseUint(f[4], 10, 64); err != nil {
				t.Fatalf("snapshot %s: bad header %q", base, header)
			}
		case ok && len(f) == 4 && f[0]+" "+f[1] == "herd-state 1":
		default:
			t.Fatalf("snapshot %s: bad header %q", base, header)
		}
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != f[3] {
			t.Fatalf("snapshot %s: checksum mismatch (torn write?)", base)
		}
		count := 0
		for line := range strings.Lines(string(body)) {
			at := strings.Fields(line)
			if len(at) != 6 || at[0] != "AT" {
				t.Fatalf("snapshot %s: bad record %q", base, line)
			}
			keepNewer(recs, at[3], strings.TrimSuffix(line, "\n"))
			count++
		}
		if n, err := strconv.Atoi(f[2]); err != nil || n != count {
			t.Fatalf("snapshot %s: header says %s records, body has %d", base, f[2], count)
		}
	}
	segs, err := filepath.Glob(base + ".wal.*")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(segs) // fixed-width hex numbers sort in order
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for _, seg := range segs {
		suffix := strings.TrimPrefix(seg, base+".wal.")
		n, err := strconv.ParseUint(suffix, 16, 64)
		if len(suffix) != 16 || err != nil || n < covered {
			continue
		}
		data, err := os.ReadFile(seg)
		if errors.Is(err, os.ErrNotExist) {
			continue // compacted meanwhile; the snapshot read above predates it
		}
		if err != nil {
			t.Fatal(err)
		}
		segments++
		rest, ok := bytes.CutPrefix(data, []byte("herd-wal 1\n"))
		for ok && len(rest) >= 8 {
			size := binary.LittleEndian.Uint32(rest)
			if size == 0 || uint64(len(rest)-8) < uint64(size) {
				break
			}
			payload := rest[8 : 8+size]
			if crc32.Update(crc32.Checksum(rest[:4], castagnoli), castagnoli, payload) != binary.LittleEndian.Uint32(rest[4:]) {
				break
			}
			at := strings.Fields(string(payload))
			if len(at) != 6 || at[0] != "AT" {
				t.Fatalf("segment %s: bad record %q", seg, payload)
			}
			keepNewer(recs, at[3], string(payload))
			rest = rest[8+size:]
		}
	}
	return recs, segments
}

// keepNewer stores line as client's record unless recs holds a newer one:
// a later client time (the AT line's last field, seconds and nanoseconds),
// or the same time and a line that sorts after.
func keepNewer(recs map[string]string, client, line string) {
	key := func(l string) (string, string) {
		f := strings.Fields(l)
		sec, frac, _ := strings.Cut(f[len(f)-1], ".")
		return fmt.Sprintf("%020s", sec), (frac + "000000000")[:9]
	}
	if old, ok := recs[client]; ok {
		oldSec, oldFrac := key(old)
		sec, frac := key(line)
		if oldSec > sec || (oldSec == sec && (oldFrac > frac || (oldFrac == frac && old >= line))) {
			return
		}
	}
	recs[client] = line
}

// TestDurableRestart runs the 2018 herd as five processes, each with a
// state file (snapshot and log, fsynced every 100ms), and floods 2,000
// clients' reports (pipelined, to four servers). In the middle of the
// second wave Holiday is killed with SIGKILL: the others keep answering
// every report. Holiday restarts from its state files with every record
// they held, and catches up with the rest from its neighbours, Welsh
// (whose only link is Holiday) with it: in the end every server holds
// every client's newest report.
func TestDurableRestart(t *testing.T) {
	dir := t.TempDir()
	topo, addrs, servers, links := herd2018Layout(t)
	stateTmpl := filepath.Join(dir, "state", "{name}.state") // serve creates the directory
	cfgPath := filepath.Join(dir, "herd.json")
	cfg := fmt.Sprintf(`{
  "servers": [
    %s
  ],
  "links": [%s],
  "provider": {"kind": "offline"},
  "redial_min": "10ms",
  "redial_max": "100ms",
  "state_file": %q,
  "state_interval": "100ms",
  "log": %q
}`, strings.Join(servers, ",\n    "), strings.Join(links, ", "), stateTmpl, filepath.Join(dir, "logs", "{name}.log"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := childEnv()
	procs := map[string]*proc{}
	serve := func(name string, args ...string) *proc {
		p := start(t, name, env, bins["herd"], append([]string{"serve", "-config", cfgPath, "-name", name}, args...)...)
		if m := p.expectLine(t, listening); m[1] != name || m[2] != addrs[name] {
			t.Fatalf("%s printed %q", name, m[0])
		}
		procs[name] = p
		return p
	}
	// The default log level (info) logs events, not every line of this
	// flood; the victim's log has its "state loaded" line.
	const victim = "Holiday"
	for _, name := range topo.Servers {
		if name == "Goloman" {
			serve(name, "-metrics", "127.0.0.1:0")
		} else {
			serve(name)
		}
	}
	t0 := time.Now()
	metricsURL := procs["Goloman"].expectLine(t, regexp.MustCompile(`^Goloman status page at (http://127\.0\.0\.1:\d+/)$`))[1] + "debug/vars"

	targets := []string{"Goloman", "Hands", "Welsh", "Wilkes"}
	conns := map[string]*durConn{}
	for _, name := range targets {
		conns[name] = durDial(t, addrs[name])
	}
	// Client i reports first to targets[i%4], then to targets[(i+1)%4].
	wave := func(report int, from, to int) map[string][]int {
		byTarget := map[string][]int{}
		for i := from; i < to; i++ {
			target := targets[(i+report-1)%len(targets)]
			byTarget[target] = append(byTarget[target], i)
		}
		for target, ids := range byTarget {
			var lines []string
			for _, i := range ids {
				lines = append(lines, "IAMAT "+durID(i)+" "+durLoc+" "+durTime(i, report)+"\n")
			}
			conns[target].send(t, lines)
		}
		return byTarget
	}
	first := map[string]string{}
	for target, ids := range wave(1, 0, durClients) {
		conns[target].iamatReplies(t, target, ids, 1, first)
	}
	t.Logf("%v: first wave answered", time.Since(t0))
	// Let the first wave reach Holiday's state file before it dies.
	waitRecords(t, victim, addrs[victim], first)
	stateFile := strings.ReplaceAll(stateTmpl, "{name}", victim)
	deadline := time.Now().Add(waitBound)
	for {
		if recs, _ := readState(t, stateFile); len(recs) == durClients {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's state files never held %d records within %v", victim, durClients, waitBound)
		}
		time.Sleep(pollPause)
	}

	t.Logf("%v: first wave saved by %s", time.Since(t0), victim)
	// The second wave: half of it, SIGKILL Holiday, the other half.
	newest := map[string]string{}
	half1 := wave(2, 0, durClients/2)
	if err := procs[victim].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-procs[victim].done
	half2 := wave(2, durClients/2, durClients)
	for _, target := range targets { // the others answer every report
		conns[target].iamatReplies(t, target, half1[target], 2, newest)
		conns[target].iamatReplies(t, target, half2[target], 2, newest)
	}
	if len(newest) != durClients {
		t.Fatalf("%d newest reports, want %d", len(newest), durClients)
	}

	t.Logf("%v: second wave answered", time.Since(t0))
	// What Holiday's state files held when it died: every record of the
	// first wave at least.
	saved, _ := readState(t, stateFile)
	if len(saved) < durClients {
		t.Fatalf("%s's state files hold %d records, want at least the %d of the first wave", victim, len(saved), durClients)
	}
	for id, line := range saved {
		if line != first[id] && line != newest[id] {
			t.Fatalf("%s's state files hold %q for %s: neither of its reports", victim, line, id)
		}
	}

	second := 0
	for id, line := range saved {
		if line == newest[id] {
			second++
		}
	}
	t.Logf("%s's state files held %d records, %d of them from the second wave", victim, len(saved), second)

	// Restarted, Holiday loads them all, then catches up from its
	// neighbours; so does Welsh, cut off while Holiday was down.
	serve(victim)
	// The log is written within 100 ms; what the killed process had not
	// written yet is lost with it.
	// Two lines: the first start's, then the restart's.
	loadedRE := regexp.MustCompile(` INFO ` + victim + ` state loaded file=\S+ records=\d+ log_records=\d+ clients=(\d+)`)
	logPath := filepath.Join(dir, "logs", victim+".log")
	waitLog(t, logPath, regexp.MustCompile(`(?s)`+loadedRE.String()+`.*`+loadedRE.String()))
	logData, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	loaded := loadedRE.FindAllStringSubmatch(string(logData), -1)
	// The first start's line, then the restart's.
	if len(loaded) != 2 || loaded[1][1] != strconv.Itoa(len(saved)) {
		t.Fatalf("%s's log says %q about loading state, want two lines, the second with clients=%d", victim, loaded, len(saved))
	}
	ids := make([]string, 0, len(saved))
	for id := range saved {
		ids = append(ids, id)
	}
	now, err := records(addrs[victim], ids)
	if err != nil {
		t.Fatal(err)
	}
	for id, line := range saved { // the saved record, or already a newer one
		if now[id] != line && now[id] != newest[id] {
			t.Fatalf("restarted %s holds %q for %s; its state file held %q", victim, now[id], id, line)
		}
	}
	t.Logf("%v: %s restarted with %d records", time.Since(t0), victim, len(saved))
	for _, name := range topo.Servers {
		waitRecords(t, name, addrs[name], newest)
	}
	t.Logf("%v: every server holds every newest record", time.Since(t0))

	// Goloman's metrics saw its share of it.
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	var vars struct{ Herd herd.Stats }
	err = json.NewDecoder(resp.Body).Decode(&vars)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s := vars.Herd; s.IAMAT != durClients/2 || s.Clients != durClients || s.RecordsPeer < durClients || s.Invalid != 0 {
		t.Errorf("Goloman's metrics: %+v", s)
	}
	// And in Prometheus's format, with every neighbour linked.
	resp, err = http.Get(strings.TrimSuffix(metricsURL, "debug/vars") + "metrics")
	if err != nil {
		t.Fatal(err)
	}
	prom, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{fmt.Sprintf("herd_clients %d\n", durClients), "herd_links_up 3\n", `herd_link_up{peer="Hands"} 1` + "\n", "herd_ready 1\n"} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("Goloman's /metrics lacks %q", want)
		}
	}

	for _, name := range topo.Servers {
		procs[name].stop(t, syscall.SIGTERM)
	}
	if _, err := os.Stat(stateFile); err != nil {
		t.Fatal(err)
	}
	// Shut down, each server folds its log into its snapshot.
	if got, segs := readState(t, stateFile); len(got) != durClients || segs != 0 {
		t.Errorf("%s's state after shutdown holds %d records and %d log segments, want %d and none", victim, len(got), segs, durClients)
	}
}
