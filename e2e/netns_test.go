//go:build linux

package e2e_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsPrefix starts the name of every network namespace the real-network
// test makes; the test's process ID follows, so that parallel runs never
// share a namespace and a run can tell its own leftovers from a live run's.
const netnsPrefix = "herdnet-"

// netnsConvergeBound bounds the final wait for every server to hold every
// answered report. It is generous because a silent cut may only be
// noticed by TCP's own retransmissions, whose backoff grows to seconds.
const netnsConvergeBound = 60 * time.Second

// netnsCut is how long Holiday stays cut off, and netnsFreeze how long
// Hands stays frozen. Both are longer than the servers' peer_timeout
// (netnsPeerTimeout), so the heartbeat cuts the silent links and the
// servers redial once the network is back, yet short enough for the
// final check to come soon after (see netnsConvergeBound).
const (
	netnsCut         = 4 * time.Second
	netnsFreeze      = 3 * time.Second
	netnsPeerTimeout = "2s"
)

// netnsSubnet is the IPv4 /24 the servers' addresses are in: it exists
// only inside the namespaces the test makes.
const netnsSubnet = "10.213.0."

// herdNet is a herd's private network: one namespace per server, each
// with one veth whose other end is a port of a bridge in a sixth "hub"
// namespace. Nothing is added to the namespace the test runs in.
type herdNet struct {
	hub   string            // the hub namespace
	ns    map[string]string // server name to its namespace
	port  map[string]string // server name to its bridge port in hub
	addrs map[string]string // server name to its host:port
}

// ipCmd runs ip with args and returns an error carrying its output.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// netnsSkip skips the test, with the reason, where it may not make
// network namespaces; on CI (CI set) as root it fails instead, since CI
// promises to run it.
func netnsSkip(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") != "" && os.Geteuid() == 0 {
		t.Fatalf("real-network test cannot run on CI as root: %s", reason)
	}
	t.Skip("real-network test skipped: " + reason)
}

// removeStaleNetns deletes the namespaces of earlier runs whose process
// is gone (or is this one: a reused process ID).
func removeStaleNetns(t *testing.T) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, netnsPrefix)
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		n, err := strconv.Atoi(pid)
		if err != nil {
			continue
		}
		if n != os.Getpid() && fileExists("/proc/"+pid) {
			continue // a live run's
		}
		if err := ipCmd("netns", "del", name); err != nil {
			t.Logf("removing a leftover namespace: %v", err)
		}
	}
}

// newHerdNet makes the network for servers, or skips the test saying why
// it cannot. Everything it makes is deleted when the test ends: deleting
// a namespace deletes the interfaces in it.
func newHerdNet(t *testing.T, servers []string, port int) *herdNet {
	t.Helper()
	if testing.Short() {
		t.Skip("real-network test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		netnsSkip(t, "not root: making network namespaces needs root with CAP_NET_ADMIN")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		netnsSkip(t, "the ip command (iproute2) is not installed")
	}
	removeStaleNetns(t)
	base := fmt.Sprintf("%s%d-", netnsPrefix, os.Getpid())
	n := &herdNet{hub: base + "hub", ns: map[string]string{}, port: map[string]string{}, addrs: map[string]string{}}
	if err := ipCmd("netns", "add", n.hub); err != nil {
		netnsSkip(t, fmt.Sprintf("cannot make a network namespace (no CAP_NET_ADMIN?): %v", err))
	}
	made := []string{n.hub}
	t.Cleanup(func() {
		for _, ns := range made {
			if err := ipCmd("netns", "del", ns); err != nil {
				t.Errorf("cleaning up: %v", err)
			}
		}
	})
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("-n", n.hub, "link", "set", "lo", "up")
	must("-n", n.hub, "link", "add", "br0", "type", "bridge")
	must("-n", n.hub, "link", "set", "br0", "up")
	for i, name := range servers {
		ns := base + strings.ToLower(name)
		must("netns", "add", ns)
		made = append(made, ns)
		n.ns[name] = ns
		n.port[name] = "v" + strconv.Itoa(i)
		ip := netnsSubnet + strconv.Itoa(i+1)
		n.addrs[name] = net.JoinHostPort(ip, strconv.Itoa(port))
		must("-n", ns, "link", "set", "lo", "up")
		must("-n", n.hub, "link", "add", n.port[name], "type", "veth", "peer", "name", "eth0", "netns", ns)
		must("-n", n.hub, "link", "set", n.port[name], "master", "br0", "up")
		must("-n", ns, "addr", "add", ip+"/24", "dev", "eth0")
		must("-n", ns, "link", "set", "eth0", "up")
	}
	return n
}

// cut takes server's bridge port down, or brings it back up: packets to
// and from it are dropped, and nobody's connection is reset.
func (n *herdNet) cut(t *testing.T, server string, down bool) {
	t.Helper()
	state := "up"
	if down {
		state = "down"
	}
	if err := ipCmd("-n", n.hub, "link", "set", n.port[server], state); err != nil {
		t.Fatal(err)
	}
}

// dialFrom returns a dialer whose connections start inside server's
// namespace. Each dial runs on an OS thread of its own that joins the
// namespace and is never handed back (the goroutine ends locked, so the
// thread ends with it); a socket stays in the namespace it was made in,
// whichever thread uses it later.
func (n *herdNet) dialFrom(server string) dialer {
	path := filepath.Join("/run/netns", n.ns[server])
	return func(addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: see above
			f, err := os.Open(path)
			if err != nil {
				ch <- result{err: err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{err: fmt.Errorf("setns %s: %w", path, err)}
				return
			}
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// flood starts a flooder at server from inside its namespace, reporting
// clients named prefix, the server's name in lower case, "-" and a number.
func (n *herdNet) flood(t *testing.T, server, prefix string, gap time.Duration) *flooder {
	t.Helper()
	c, err := n.dialFrom(server)(n.addrs[server])
	if err != nil {
		t.Fatalf("dialling %s from its namespace: %v", server, err)
	}
	return floodOn(t, server, c, prefix+strings.ToLower(server)+"-", gap)
}

// waitFlooder waits until f has had n reports answered in all.
func waitFlooder(t *testing.T, f *flooder, n int) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for f.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d reports within %v, want %d", f.server, f.count(), waitBound, n)
		}
		time.Sleep(pollPause)
	}
}

// TestRealNetwork runs the 2018 herd as five "herd serve" processes, each
// in a network namespace of its own, joined by veth pairs through a
// bridge. While pipelined clients inside four of the namespaces keep
// reporting fresh clients, Holiday (the herd's hub) is cut off silently
// (its bridge port down: no reset, packets just vanish), Hands is frozen
// with SIGSTOP, and both come back. Afterwards every server holds every
// report any server answered.
func TestRealNetwork(t *testing.T) {
	topo, _, _, links := herd2018Layout(t)
	hn := newHerdNet(t, topo.Servers, 12000)
	dir := t.TempDir()
	var servers []string
	for _, name := range topo.Servers {
		servers = append(servers, fmt.Sprintf(`{"name": %q, "addr": %q}`, name, hn.addrs[name]))
	}
	logs := filepath.Join(dir, "logs", "{name}.log")
	cfgPath := filepath.Join(dir, "herd.json")
	cfg := fmt.Sprintf(`{
  "servers": [
    %s
  ],
  "links": [%s],
  "provider": {"kind": "offline"},
  "secret_env": "HERD_SECRET",
  "redial_min": "10ms",
  "redial_max": "200ms",
  "peer_timeout": %q,
  "log": %q,
  "log_level": "info"
}`, strings.Join(servers, ",\n    "), strings.Join(links, ", "), netnsPeerTimeout, logs)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, name := range topo.Servers {
			b, _ := os.ReadFile(strings.ReplaceAll(logs, "{name}", name))
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("%s.log, last lines:\n%s", name, strings.Join(lines[max(0, len(lines)-25):], "\n"))
		}
	})
	env := childEnv("HERD_SECRET=netns-e2e-secret")
	procs := map[string]*proc{}
	for _, name := range topo.Servers {
		p := start(t, name, env, "ip", "netns", "exec", hn.ns[name], bins["herd"], "serve", "-config", cfgPath, "-name", name)
		if m := p.expectLine(t, listening); m[1] != name || m[2] != hn.addrs[name] {
			t.Fatalf("%s printed %q", name, m[0])
		}
		procs[name] = p
	}
	t0 := time.Now()

	// The herd is linked once a report at each server is everywhere.
	warm := map[string]string{}
	for _, name := range topo.Servers {
		f := hn.flood(t, name, "warm-", 0)
		waitFlooder(t, f, 1)
		f.stop()
		for id, line := range f.acked {
			warm[id] = line
		}
	}
	for _, name := range topo.Servers {
		waitRecordsVia(t, hn.dialFrom(name), name, hn.addrs[name], warm, waitBound)
	}
	t.Logf("%v: the herd is linked", time.Since(t0))

	flooders := map[string]*flooder{}
	for _, name := range []string{"Goloman", "Hands", "Holiday", "Welsh"} {
		flooders[name] = hn.flood(t, name, "", 2*time.Millisecond)
	}
	// waitAcked waits until the flooder at server has had n more reports
	// answered than now.
	waitAcked := func(server string, n int) {
		t.Helper()
		waitFlooder(t, flooders[server], flooders[server].count()+n)
	}
	signal := func(name string, sig syscall.Signal) {
		t.Helper()
		if err := procs[name].cmd.Process.Signal(sig); err != nil {
			t.Fatalf("%s: %v: %v", name, sig, err)
		}
	}
	// hold keeps the current state for d, with reports still answered.
	hold := func(d time.Duration) {
		t.Helper()
		end := time.Now().Add(d)
		waitAcked("Goloman", 100)
		time.Sleep(time.Until(end)) // the scenario's timing, not synchronisation
	}
	waitAcked("Goloman", 200)

	// Holiday (Welsh's only neighbour) is cut off silently for netnsCut,
	// and goes on answering its own client, as does Welsh; Hands is
	// frozen for netnsFreeze, from the middle of the cut.
	cutAt := time.Now()
	hn.cut(t, "Holiday", true)
	t.Logf("%v: Holiday cut off", time.Since(t0))
	hold(netnsCut / 2)
	signal("Hands", syscall.SIGSTOP)
	t.Logf("%v: Hands stopped", time.Since(t0))
	hold(netnsCut / 2)
	waitAcked("Holiday", 100)
	waitAcked("Welsh", 100)
	// The cut is real: what Holiday and Welsh answered during it is
	// nowhere beyond them.
	for _, island := range []string{"Holiday", "Welsh"} {
		f := flooders[island]
		last := fmt.Sprintf("%s%d", f.prefix, f.count()-1)
		got, err := recordsVia(hn.dialFrom("Goloman"), hn.addrs["Goloman"], []string{last})
		if err != nil {
			t.Fatalf("asking Goloman: %v", err)
		}
		if got[last] != "" {
			t.Fatalf("Goloman holds %q, which %s answered while cut off", got[last], island)
		}
	}
	hn.cut(t, "Holiday", false)
	t.Logf("%v: Holiday back", time.Since(t0))
	hold(netnsFreeze - netnsCut/2)
	signal("Hands", syscall.SIGCONT)
	t.Logf("%v: Hands continued", time.Since(t0))
	waitAcked("Hands", 100)
	hold(time.Second)

	loadStopped := time.Now()
	acked := map[string]string{}
	for id, line := range warm {
		acked[id] = line
	}
	for _, f := range flooders {
		f.stop()
		if f.bad != "" {
			t.Fatal(f.bad)
		}
		for id, line := range f.acked {
			acked[id] = line
		}
	}
	t.Logf("%v: load stopped; %d reports answered", time.Since(t0), len(acked))
	for _, name := range topo.Servers {
		waitRecordsVia(t, hn.dialFrom(name), name, hn.addrs[name], acked, netnsConvergeBound)
		t.Logf("%v: %s holds every answered report", time.Since(t0), name)
	}
	for _, name := range topo.Servers {
		procs[name].stop(t, syscall.SIGTERM)
	}
	// How the servers saw the cut and the freeze: the links they dropped
	// in between (for tuning the heartbeat, which should drop the links
	// to Holiday and to Hands and redial them).
	for _, name := range topo.Servers {
		b, err := os.ReadFile(strings.ReplaceAll(logs, "{name}", name))
		if err != nil {
			t.Fatal(err)
		}
		var drops []string
		for _, line := range strings.Split(string(b), "\n") {
			stamp, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			at, err := time.Parse(time.RFC3339Nano, stamp)
			if err == nil && strings.Contains(line, `msg="peer link dropped"`) && !at.Before(cutAt.Truncate(time.Millisecond)) && at.Before(loadStopped) {
				drops = append(drops, line)
			}
		}
		t.Logf("%s dropped %d links during the cut and the freeze%s", name, len(drops), strings.Join(append([]string{""}, drops...), "\n  "))
	}
}
