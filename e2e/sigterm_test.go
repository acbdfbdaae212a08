package e2e_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMSpreadsWhatItAnswered is issue 13's reproduction: Holiday and
// Welsh only; 3,000 reports of distinct clients pipelined to Welsh on one
// connection, and SIGTERM to Welsh after the first 500 replies. Welsh exits
// 0, and every report it answered is at Holiday afterwards (before the
// fix Holiday lacked 2,400 to 2,950 of them).
func TestSIGTERMSpreadsWhatItAnswered(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 2)
	addrs := map[string]string{"Holiday": ports[0], "Welsh": ports[1]}
	cfgPath := filepath.Join(dir, "herd.json")
	cfg := fmt.Sprintf(`{
  "servers": [{"name": "Holiday", "addr": %q}, {"name": "Welsh", "addr": %q}],
  "links": [["Holiday", "Welsh"]],
  "provider": {"kind": "offline"},
  "secret_env": "HERD_SECRET",
  "log": %q
}`, addrs["Holiday"], addrs["Welsh"], filepath.Join(dir, "logs", "{name}.log"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := childEnv("HERD_SECRET=e2e-secret")
	procs := map[string]*proc{}
	for _, name := range []string{"Holiday", "Welsh"} {
		p := start(t, name, env, bins["herd"], "serve", "-config", cfgPath, "-name", name)
		p.expectLine(t, listening)
		procs[name] = p
	}
	// Linked: a report at Welsh shows at Holiday.
	first := iamat(t, addrs["Welsh"], "linked.check", "+1.0+1.0", "1520023934.5")
	waitRecord(t, "Holiday", addrs["Holiday"], "linked.check", first)

	c, err := net.DialTimeout("tcp", addrs["Welsh"], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const reports = 3000
	var b strings.Builder
	for i := range reports {
		fmt.Fprintf(&b, "IAMAT term%04d +34.068930-118.445127 1520023934.%09d\n", i, i)
	}
	go c.Write([]byte(b.String()))
	r := bufio.NewReader(c)
	answered := map[string]string{}
	stopped := make(chan struct{})
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // Welsh closed the connection
		}
		line = strings.TrimSuffix(line, "\n")
		f := strings.Fields(line)
		if len(f) != 6 || f[0] != "AT" {
			t.Fatalf("reply %q", line)
		}
		answered[f[3]] = line
		if len(answered) == 500 {
			go func() {
				procs["Welsh"].stop(t, syscall.SIGTERM)
				close(stopped)
			}()
		}
	}
	<-stopped
	if len(answered) < 500 {
		t.Fatalf("Welsh answered %d reports", len(answered))
	}
	waitRecords(t, "Holiday", addrs["Holiday"], answered)
	t.Logf("Welsh answered %d of %d reports before it exited; Holiday holds every one", len(answered), reports)
}
