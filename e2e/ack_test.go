package e2e_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// flooder is one pipelined client connection that reports fresh clients
// (each reports once) as fast as the server answers, with up to window
// reports in flight, until the connection breaks. acked holds every
// report the server answered: client ID to the AT line.
type flooder struct {
	server, prefix string
	c              net.Conn
	mu             sync.Mutex
	acked          map[string]string
	bad            string // a reply that is not the report's AT line
	done           chan struct{}
}

// floodWindow is how many reports a flooder keeps in flight.
const floodWindow = 16

func startFlooder(t *testing.T, server, addr, prefix string) *flooder {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitBound)
	if err != nil {
		t.Fatal(err)
	}
	return floodOn(t, server, c, prefix, 0)
}

// floodOn runs a flooder on the connection c, pausing gap (when above 0)
// after each report it sends, to bound how many reports a long run makes.
func floodOn(t *testing.T, server string, c net.Conn, prefix string, gap time.Duration) *flooder {
	t.Helper()
	c.SetDeadline(time.Now().Add(3 * waitBound))
	f := &flooder{server: server, prefix: prefix, c: c, acked: map[string]string{}, done: make(chan struct{})}
	t.Cleanup(func() {
		c.Close()
		<-f.done
	})
	slots := make(chan struct{}, floodWindow)
	sent := make(chan int, floodWindow)
	go func() { // writer
		defer close(sent)
		for i := 0; ; i++ {
			select {
			case slots <- struct{}{}:
			case <-f.done:
				return
			}
			if _, err := fmt.Fprintf(c, "IAMAT %s%d %s %s\n", prefix, i, durLoc, durTime(i, 1)); err != nil {
				return
			}
			sent <- i
			if gap > 0 {
				time.Sleep(gap) // pacing, not synchronisation
			}
		}
	}()
	go func() { // reader
		defer close(f.done)
		defer c.Close() // stops the writer
		br := bufio.NewReader(c)
		for i := range sent {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			id := fmt.Sprintf("%s%d", prefix, i)
			line = strings.TrimSuffix(line, "\n")
			f.mu.Lock()
			if strings.HasPrefix(line, "AT "+server+" ") && strings.HasSuffix(line, " "+id+" "+durLoc+" "+durTime(i, 1)) && strings.Count(line, " ") == 5 {
				f.acked[id] = line
			} else if f.bad == "" {
				f.bad = fmt.Sprintf("%s answered IAMAT %s with %q", server, id, line)
			}
			f.mu.Unlock()
			<-slots
		}
	}()
	return f
}

// stop closes the flooder's connection and waits for its reader: acked
// then holds every report the server answered.
func (f *flooder) stop() {
	f.c.Close()
	<-f.done
}

func (f *flooder) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.acked)
}

// TestAckDurableSurvivesSIGKILL runs the 2018 herd as five processes with
// "ack": "durable" while eight pipelined clients flood four of them with
// fresh reports. Mid-flood Goloman and Welsh are killed with SIGKILL, the
// flood goes on at Hands and Wilkes, then the other three are killed too:
// no process holds anything in memory any more. Restarted, the herd holds
// every report any server answered.
func TestAckDurableSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	topo, addrs, servers, links := herd2018Layout(t)
	stateTmpl := filepath.Join(dir, "state", "{name}.state")
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
  "ack": "durable",
  "log": %q,
  "log_level": "warn"
}`, strings.Join(servers, ",\n    "), strings.Join(links, ", "), stateTmpl, filepath.Join(dir, "logs", "{name}.log"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := childEnv()
	procs := map[string]*proc{}
	serve := func(name string) {
		p := start(t, name, env, bins["herd"], "serve", "-config", cfgPath, "-name", name)
		if m := p.expectLine(t, listening); m[1] != name || m[2] != addrs[name] {
			t.Fatalf("%s printed %q", name, m[0])
		}
		procs[name] = p
	}
	for _, name := range topo.Servers {
		serve(name)
	}
	t0 := time.Now()
	var flooders []*flooder
	for _, name := range []string{"Goloman", "Hands", "Welsh", "Wilkes"} {
		for k := range 2 {
			flooders = append(flooders, startFlooder(t, name, addrs[name], fmt.Sprintf("%s%d-", strings.ToLower(name), k)))
		}
	}
	total := func() int {
		n := 0
		for _, f := range flooders {
			n += f.count()
		}
		return n
	}
	// waitAcked waits until the flooders at servers have had n more
	// reports answered than now.
	waitAcked := func(n int, servers ...string) {
		t.Helper()
		count := func() int {
			c := 0
			for _, f := range flooders {
				for _, s := range servers {
					if f.server == s {
						c += f.count()
					}
				}
			}
			return c
		}
		goal := count() + n
		deadline := time.Now().Add(waitBound)
		for count() < goal {
			if time.Now().After(deadline) {
				t.Fatalf("%v answered fewer than %d more reports within %v", servers, n, waitBound)
			}
			time.Sleep(pollPause)
		}
	}
	kill := func(names ...string) {
		for _, name := range names {
			if err := procs[name].cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range names {
			<-procs[name].done
		}
	}
	waitAcked(2000, "Goloman", "Hands", "Welsh", "Wilkes")
	kill("Goloman", "Welsh")
	t.Logf("%v: Goloman and Welsh killed with %d reports answered", time.Since(t0), total())
	waitAcked(1000, "Hands", "Wilkes")
	kill("Hands", "Holiday", "Wilkes")
	for _, f := range flooders {
		<-f.done
		if f.bad != "" {
			t.Fatal(f.bad)
		}
		if f.count() == 0 {
			t.Fatalf("the flooder at %s had no report answered", f.server)
		}
	}
	acked := map[string]string{}
	for _, f := range flooders {
		for id, line := range f.acked {
			acked[id] = line
		}
	}
	t.Logf("%v: every server killed; %d reports answered", time.Since(t0), len(acked))

	for _, name := range topo.Servers {
		serve(name)
	}
	for _, name := range topo.Servers {
		waitRecords(t, name, addrs[name], acked)
	}
	t.Logf("%v: restarted, every server holds every answered report", time.Since(t0))
	for _, name := range topo.Servers {
		procs[name].stop(t, syscall.SIGTERM)
	}
}
