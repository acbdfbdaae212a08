package bench

// Tests of "herd bench faults": the plan, its flags, and a short run
// against real herd serve processes built from cmd/herd.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// checkPlan fails t unless plan keeps the rules: in time order, inside
// the window, never the loaded server, never a server that is still out,
// at most maxOut servers out at once (by the plan's own times).
func checkPlan(t *testing.T, p faultPlan, plan []fault) {
	t.Helper()
	for i, f := range plan {
		if f.Server == p.loaded || !slices.Contains(p.servers, f.Server) {
			t.Fatalf("seed %d: fault %d on %q", p.seed, i, f.Server)
		}
		if f.At < 0 || f.At >= p.window || i > 0 && f.At < plan[i-1].At {
			t.Fatalf("seed %d: fault %d at %v (window %v, previous at %v)", p.seed, i, f.At, p.window, plan[max(i-1, 0)].At)
		}
		if f.Pause < p.pause/2 || f.Pause >= p.pause*3/2 || !slices.Contains(p.kinds, f.Kind) {
			t.Fatalf("seed %d: fault %d: %+v", p.seed, i, f)
		}
		out := 0
		for _, g := range plan[:i] {
			if f.At < g.back(p.margin) {
				out++
				if g.Server == f.Server {
					t.Fatalf("seed %d: fault %d on %s while it is out (fault at %v)", p.seed, i, f.Server, g.At)
				}
			}
		}
		if out >= maxOut {
			t.Fatalf("seed %d: fault %d finds %d servers out", p.seed, i, out)
		}
	}
}

func TestBenchFaultPlan(t *testing.T) {
	p := faultPlan{n: 6, window: 10 * time.Second, servers: []string{"Goloman", "Hands", "Holiday", "Welsh", "Wilkes"},
		loaded: "Hands", kinds: faultKinds, pause: time.Second, margin: faultMargin}
	// A seed gives one plan, whatever ran before.
	p.seed = 42
	first := planFaults(p)
	if len(first) != 6 {
		t.Fatalf("6 faults in 10s, 1s pauses: got %d: %+v", len(first), first)
	}
	for range 3 {
		if again := planFaults(p); !slices.Equal(again, first) {
			t.Fatalf("seed 42 twice:\n%+v\n%+v", first, again)
		}
	}
	p.seed = 43
	if other := planFaults(p); slices.Equal(other, first) {
		t.Errorf("seeds 42 and 43 give the same plan: %+v", first)
	}

	// Crowded plans keep the rules: many faults, long pauses, few servers.
	rng := rand.New(rand.NewPCG(5, 6))
	kinds := map[faultKind]int{}
	for trial := range 500 {
		p := p
		p.seed = rng.Uint64()
		p.n = 1 + rng.IntN(40)
		p.pause = time.Duration(1+rng.IntN(3000)) * time.Millisecond
		p.servers = p.servers[:2+rng.IntN(4)]
		p.loaded = p.servers[rng.IntN(len(p.servers))]
		if trial%3 == 0 {
			p.kinds = []faultKind{faultStop}
		}
		plan := planFaults(p)
		checkPlan(t, p, plan)
		if len(plan) == 0 {
			t.Fatalf("%+v: no fault planned", p)
		}
		for _, f := range plan {
			kinds[f.Kind]++
		}
	}
	for _, k := range faultKinds {
		if kinds[k] == 0 {
			t.Errorf("no %s fault in 500 plans: %v", k, kinds)
		}
	}

	// Nothing to fault: no plan rather than a hang.
	p.servers, p.loaded = []string{"Hands"}, "Hands"
	if plan := planFaults(p); plan != nil {
		t.Errorf("only the loaded server: %+v", plan)
	}
}

func TestBenchFaultsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"faults", "-kinds", "kill,nope"}, {"faults", "-at", "Nobody"}, {"faults", "-faults", "-1"},
		{"faults", "-pause", "0s"}, {"faults", "-port", "65533"}, {"faults", "-preset", "1999"},
		{"faults", "-conns", "0"}, {"faults", "-clients", "0", "-prefill"},
	} {
		e, _, errOut := testEnv()
		if code := run(context.Background(), e, args); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitUsage, errOut)
		}
	}
	if k, err := parseKinds("stop, kill,stop"); err != nil || !slices.Equal(k, []faultKind{faultStop, faultKill}) {
		t.Errorf("parseKinds: %v, %v", k, err)
	}
}

// freePorts returns the first of n consecutive loopback ports that are
// free now.
func freePorts(t *testing.T, n int) int {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	for range 100 {
		base := 20000 + rng.IntN(40000)
		var lns []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if len(lns) == n {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

// buildHerd builds cmd/herd into a temporary directory.
func buildHerd(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "herd")
	goCmd := "go"
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		if p := filepath.Join(goroot, "bin", "go"); fileExistsBench(p) {
			goCmd = p
		}
	}
	if out, err := exec.Command(goCmd, "build", "-o", bin, "github.com/proxyherd/herd/cmd/herd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func fileExistsBench(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestBenchFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the herd command and runs five servers")
	}
	bin := buildHerd(t)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	port := freePorts(t, 10)
	e, out, errOut := testEnv()
	args := []string{"faults", "-herd", bin, "-port", strconv.Itoa(port), "-dir", dir, "-state-dir", stateDir,
		"-conns", "2", "-inflight", "4", "-clients", "3", "-duration", "2s", "-warmup", "0",
		"-faults", "2", "-seed", "3", "-pause", "300ms", "-kinds", "kill,stop", "-converge-timeout", "20s", "-json"}
	if code := run(context.Background(), e, args); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var rep faultsReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if !rep.Converged || rep.Seed != 3 || rep.Loaded != "Hands" || rep.Error != "" {
		t.Errorf("report: converged %v, seed %d, loaded %q, error %q", rep.Converged, rep.Seed, rep.Loaded, rep.Error)
	}
	l := rep.Load
	if l == nil || l.Errors != 0 || l.Sent == 0 || l.Answered != l.Sent || rep.Unanswered != 0 || l.Addr != "127.0.0.1:"+strconv.Itoa(port+1) {
		t.Fatalf("load: %+v", l)
	}
	if len(rep.Planned) != 2 || len(rep.Applied) != 2 {
		t.Fatalf("planned %+v, applied %+v", rep.Planned, rep.Applied)
	}
	for i, a := range rep.Applied {
		if a.fault != rep.Planned[i] || a.Err != "" || a.Started < a.At || a.Back < a.Started || a.Pid == 0 || (a.Kind == faultKill) != (a.NewPid != 0) {
			t.Errorf("fault %d: %+v", i, *a)
		}
		if s, _ := os.Stat(filepath.Join(stateDir, a.Server+".state")); a.Kind == faultKill && s == nil {
			t.Errorf("no state file for %s", a.Server)
		}
	}
	if len(rep.Servers) != 5 {
		t.Fatalf("servers: %+v", rep.Servers)
	}
	// Converged: one digest, one count, every client the load reported.
	for _, s := range rep.Servers {
		if s.Digest != rep.Servers[0].Digest || s.Clients != int64(l.Distinct) || s.StatsErr != "" || s.Digest == fmt.Sprintf("%016x", 0) {
			t.Errorf("server %+v (load reported %d clients)", s, l.Distinct)
		}
		if log, err := os.ReadFile(filepath.Join(dir, s.Name+".log")); err != nil || len(log) == 0 {
			t.Errorf("%s's log: %v", s.Name, err)
		}
	}
}
