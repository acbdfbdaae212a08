package e2e_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
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

// records reads a server's record of each client with pipelined
// "WHATSAT id 1 0"; an unknown client's entry is "".
func records(addr string, ids []string) (map[string]string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
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
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	deadline := time.Now().Add(waitBound)
	for {
		got, err := records(addr, ids)
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
				t.Fatalf("%s: records never read within %v: %v", server, waitBound, err)
			}
			t.Fatalf("%s: %d of %d clients still without their newest record after %v, e.g. %s", server, wrong, len(ids), waitBound, example)
		}
		time.Sleep(pollPause)
	}
}

// readStateFile parses a herd state file (state.go): a header
// "herd-state 1 <count> <sha256 of the body>" and one AT line per record.
// It returns the records by client ID.
func readStateFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	header, body, ok := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(header))
	if !ok || len(f) != 4 || f[0]+" "+f[1] != "herd-state 1" {
		t.Fatalf("state file %s: bad header %q", path, header)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != f[3] {
		t.Fatalf("state file %s: checksum mismatch (torn write?)", path)
	}
	recs := map[string]string{}
	for line := range strings.Lines(string(body)) {
		at := strings.Fields(line)
		if len(at) != 6 || at[0] != "AT" {
			t.Fatalf("state file %s: bad record %q", path, line)
		}
		recs[at[3]] = strings.TrimSuffix(line, "\n")
	}
	if strconv.Itoa(len(recs)) != f[2] {
		t.Fatalf("state file %s: header says %s records, body has %d", path, f[2], len(recs))
	}
	return recs
}

// TestDurableRestart runs the 2018 herd as five processes, each with a
// state file saved every 100ms, and floods 2,000 clients' reports
// (pipelined, to four servers). In the middle of the second wave Holiday
// is killed with SIGKILL: the others keep answering every report. Holiday
// restarts from its state file with every record the file held, and
// catches up with the rest from its neighbours, Welsh (whose only link is
// Holiday) with it: in the end every server holds every client's newest
// report.
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
	metricsURL := procs["Goloman"].expectLine(t, regexp.MustCompile(`^Goloman metrics at (http://127\.0\.0\.1:\d+/debug/vars)$`))[1]

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
		if data, err := os.ReadFile(stateFile); err == nil && bytes.HasPrefix(data, []byte(fmt.Sprintf("herd-state 1 %d ", durClients))) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's state file never held %d records within %v", victim, durClients, waitBound)
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
	// What Holiday's state file held when it died: every record of the
	// first wave at least (the file is written atomically, so it is whole).
	saved := readStateFile(t, stateFile)
	if len(saved) < durClients {
		t.Fatalf("%s's state file holds %d records, want at least the %d of the first wave", victim, len(saved), durClients)
	}
	for id, line := range saved {
		if line != first[id] && line != newest[id] {
			t.Fatalf("%s's state file holds %q for %s: neither of its reports", victim, line, id)
		}
	}

	second := 0
	for id, line := range saved {
		if line == newest[id] {
			second++
		}
	}
	t.Logf("%s's state file held %d records, %d of them from the second wave", victim, len(saved), second)

	// Restarted, Holiday loads them all, then catches up from its
	// neighbours; so does Welsh, cut off while Holiday was down.
	serve(victim)
	// The log is written within 100 ms; what the killed process had not
	// written yet is lost with it.
	loadedRE := regexp.MustCompile(` INFO ` + victim + ` state loaded file=\S+ records=(\d+)`)
	logPath := filepath.Join(dir, "logs", victim+".log")
	waitLog(t, logPath, loadedRE)
	logData, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	loaded := loadedRE.FindAllStringSubmatch(string(logData), -1)
	if len(loaded) != 1 || loaded[0][1] != strconv.Itoa(len(saved)) {
		t.Fatalf("%s's log says %q about loading state, want one line with records=%d", victim, loaded, len(saved))
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

	for _, name := range topo.Servers {
		procs[name].stop(t, syscall.SIGTERM)
	}
	if _, err := os.Stat(stateFile); err != nil {
		t.Fatal(err)
	}
	if got := readStateFile(t, stateFile); len(got) != durClients {
		t.Errorf("%s's state file after shutdown holds %d records, want %d", victim, len(got), durClients)
	}
}
