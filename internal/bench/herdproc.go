package bench

// herdproc.go: the herd of "herd bench faults", one "herd serve" process
// per server of a preset, started, signalled, restarted and asked for
// its Stats over its HTTP endpoint. Only the command line, signals, the
// TCP port and the HTTP endpoints are used, as an operator would.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/cli"
)

// faultsSecretEnv is the environment variable that gives the servers
// their peer secret (herd serve -secret-env).
const faultsSecretEnv = "HERD_BENCH_SECRET"

// Bounds and pauses of process control.
const (
	procPoll     = 20 * time.Millisecond // between two looks at a server that is starting or converging
	termBound    = 10 * time.Second      // a SIGTERMed server that has not exited by then is SIGKILLed
	statsTimeout = 2 * time.Second       // one HTTP request to a server
)

// herdProcs is a herd of herd serve processes.
type herdProcs struct {
	bin      string // the herd command
	preset   string
	port     int    // the first server's port (herd serve -port)
	secret   string // the peer secret, passed in faultsSecretEnv
	dir      string // where each server's output goes, NAME.log
	stateDir string // "" for none; else each server's state file is NAME.state in it
	servers  []*herdProc
	client   *http.Client
}

// herdProc is one server of the herd and its current process.
type herdProc struct {
	name       string
	addr       string // client and peer address
	http       string // herd serve -http address
	neighbours int
	log        *os.File

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	waitErr error         // cmd's exit, once exited is closed
	starts  int
	// Link drops since the herd first linked up: drops counts those of
	// earlier processes; dropBase is what the first process had counted
	// by then (duplicate links replaced as the servers came up together).
	drops, dropBase uint64
	// linkBase is each link's drops (by peer) when the herd first linked
	// up, from the status page.
	linkBase map[string]uint64
}

// linkDrops returns how many times l went down: its ups, less the one
// that is up.
func (l statusLink) linkDrops() uint64 {
	if l.Up && l.Ups > 0 {
		return l.Ups - 1
	}
	return l.Ups
}

// baseline records every server's link drops so far, so that the report
// counts only those after the herd linked up.
func (h *herdProcs) baseline(ctx context.Context) error {
	for _, s := range h.servers {
		st, err := h.stats(ctx, s)
		if err != nil {
			return err
		}
		links, err := h.links(ctx, s)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.dropBase = st.LinkDrops
		s.linkBase = map[string]uint64{}
		for _, l := range links {
			s.linkBase[l.Peer] = l.linkDrops()
		}
		s.mu.Unlock()
	}
	return nil
}

// addDrops adds the LinkDrops of s's current process, read as it is
// about to end, to those of its earlier processes.
func (s *herdProc) addDrops(current uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops += current - min(s.dropBase, current)
	s.dropBase = 0
}

// runDrops returns s's link drops since the herd linked up, given its
// current process's LinkDrops.
func (s *herdProc) runDrops(current uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drops + current - min(s.dropBase, current)
}

// newHerdProcs prepares (but does not start) a process for each server
// of preset, servers on ports from port, HTTP endpoints from httpPort.
func newHerdProcs(bin, preset string, port, httpPort int, dir, stateDir, secret string) (*herdProcs, error) {
	t, ok := herd.Presets[preset]
	if !ok {
		return nil, fmt.Errorf("no preset %q", preset)
	}
	h := &herdProcs{bin: bin, preset: preset, port: port, secret: secret, dir: dir, stateDir: stateDir,
		client: &http.Client{Timeout: statsTimeout}}
	for i, name := range t.Servers {
		f, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			h.closeLogs()
			return nil, err
		}
		h.servers = append(h.servers, &herdProc{
			name:       name,
			addr:       net.JoinHostPort("127.0.0.1", strconv.Itoa(port+i)),
			http:       net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort+i)),
			neighbours: len(t.Neighbours(name)),
			log:        f,
		})
	}
	return h, nil
}

// server returns the server called name, or nil.
func (h *herdProcs) server(name string) *herdProc {
	for _, s := range h.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

// closeLogs closes the servers' log files.
func (h *herdProcs) closeLogs() {
	for _, s := range h.servers {
		s.log.Close()
	}
}

// start starts a new process for s, which must have none running.
func (h *herdProcs) start(s *herdProc) error {
	args := []string{"serve", "-preset", h.preset, "-port", strconv.Itoa(h.port), "-host", "127.0.0.1",
		"-name", s.name, "-secret-env", faultsSecretEnv, "-places", "offline", "-http", s.http}
	if h.stateDir != "" {
		args = append(args, "-state-file", filepath.Join(h.stateDir, s.name+".state"))
	}
	cmd := exec.Command(h.bin, args...)
	cmd.Env = append(os.Environ(), faultsSecretEnv+"="+h.secret)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	s.mu.Lock()
	defer s.mu.Unlock()
	s.starts++
	fmt.Fprintf(s.log, "=== herd bench faults: start %d of %s at %s\n", s.starts, s.name, time.Now().Format(time.RFC3339Nano))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	exited := make(chan struct{})
	s.cmd, s.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(exited)
	}()
	return nil
}

// proc returns s's current process and the channel closed when it exits.
func (s *herdProc) proc() (*exec.Cmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd, s.exited
}

// pid returns the pid of s's current process, 0 for none.
func (s *herdProc) pid() int {
	if cmd, _ := s.proc(); cmd != nil {
		return cmd.Process.Pid
	}
	return 0
}

// signal sends sig to s's current process and returns its pid.
func (s *herdProc) signal(sig syscall.Signal) (int, error) {
	cmd, _ := s.proc()
	if cmd == nil {
		return 0, fmt.Errorf("%s: not started", s.name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return cmd.Process.Pid, fmt.Errorf("%s: %v: %w", s.name, sig, err)
	}
	return cmd.Process.Pid, nil
}

// waitExit waits until s's process has exited, SIGKILLing it after
// bound (0: at once).
func (s *herdProc) waitExit(bound time.Duration) {
	cmd, exited := s.proc()
	if cmd == nil {
		return
	}
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-exited:
		return
	case <-t.C:
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Kill()
	<-exited
}

// exitErr returns why s's process has exited, or nil while it runs.
func (s *herdProc) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.exited:
		if s.waitErr == nil {
			return fmt.Errorf("%s exited (see %s)", s.name, s.log.Name())
		}
		return fmt.Errorf("%s exited: %v (see %s)", s.name, s.waitErr, s.log.Name())
	default:
		return nil
	}
}

// waitListening waits until s's port accepts a connection, and fails if
// s's process exits, ctx ends or bound passes first.
func (h *herdProcs) waitListening(ctx context.Context, s *herdProc, bound time.Duration) error {
	return pollUntil(ctx, bound, func() (bool, error) {
		if c, err := net.DialTimeout("tcp", s.addr, statsTimeout); err == nil {
			c.Close()
			return true, nil
		}
		return false, s.exitErr()
	}, func() error {
		return fmt.Errorf("%s: not listening after %v (see %s)", s.name, bound, s.log.Name())
	})
}

// startAll starts every server and waits until each answers over HTTP
// with all its links up. It fails as soon as one exits (a busy port), or
// after bound, naming the servers not linked up.
func (h *herdProcs) startAll(ctx context.Context, bound time.Duration) error {
	for _, s := range h.servers {
		if err := h.start(s); err != nil {
			return err
		}
	}
	var waiting []string
	return pollUntil(ctx, bound, func() (bool, error) {
		waiting = waiting[:0]
		for _, s := range h.servers {
			if err := s.exitErr(); err != nil {
				return false, err
			}
			if st, err := h.stats(ctx, s); err != nil || st.LinksUp != int64(s.neighbours) {
				waiting = append(waiting, s.name)
			}
		}
		return len(waiting) == 0, nil
	}, func() error {
		return fmt.Errorf("not linked up after %v: %s (see the logs in %s)", bound, strings.Join(waiting, ", "), h.dir)
	})
}

// pollUntil calls check every procPoll until it reports done or fails,
// ctx ends, or bound passes (then it returns late's error).
func pollUntil(ctx context.Context, bound time.Duration, check func() (bool, error), late func() error) error {
	deadline := time.Now().Add(bound)
	for {
		done, err := check()
		switch {
		case err != nil:
			return err
		case done:
			return nil
		case time.Now().After(deadline):
			return late()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(procPoll):
		}
	}
}

// stopAll ends every process (SIGCONT, then SIGTERM; SIGKILL after
// termBound) and closes the logs.
func (h *herdProcs) stopAll() {
	var wg sync.WaitGroup
	for _, s := range h.servers {
		if cmd, _ := s.proc(); cmd != nil {
			s.signal(syscall.SIGCONT)
			s.signal(syscall.SIGTERM)
			wg.Go(func() { s.waitExit(termBound) })
		}
	}
	wg.Wait()
	h.client.CloseIdleConnections()
	h.closeLogs()
}

// varsDoc is what "faults" reads of a server's /debug/vars (herd serve's
// expvar endpoint): the node's Stats, computed for the request. The
// status page's /status.json has them too, but rebuilds at most twice a
// second, which would round every convergence time up to that.
type varsDoc struct {
	Herd *herd.Stats `json:"herd"`
}

// stats returns s's Stats.
func (h *herdProcs) stats(ctx context.Context, s *herdProc) (herd.Stats, error) {
	var doc varsDoc
	if err := h.getJSON(ctx, s, cli.MetricsPath, &doc); err != nil {
		return herd.Stats{}, err
	}
	if doc.Herd == nil {
		return herd.Stats{}, fmt.Errorf("%s: no \"herd\" in %s", s.name, cli.MetricsPath)
	}
	return *doc.Herd, nil
}

// statusLink is what "faults" reads of a link in /status.json.
type statusLink struct {
	Peer string `json:"peer"`
	Up   bool   `json:"up"`
	Ups  uint64 `json:"ups"`
}

// links returns s's links as its status page reports them.
func (h *herdProcs) links(ctx context.Context, s *herdProc) ([]statusLink, error) {
	var doc struct {
		Links []statusLink `json:"links"`
	}
	if err := h.getJSON(ctx, s, "/status.json", &doc); err != nil {
		return nil, err
	}
	return doc.Links, nil
}

// getJSON decodes the JSON s's HTTP endpoint serves at path into v.
func (h *herdProcs) getJSON(ctx context.Context, s *herdProc, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+s.http+path, nil)
	if err != nil {
		return err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", s.name, path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: %s: %w", s.name, path, err)
	}
	return nil
}

// errNotConverged is the error of a herd that did not converge in time.
var errNotConverged = errors.New("the servers did not converge")

// converge polls every server's Stats until all have the same Digest and
// the same number of clients, and returns how long that took and the
// last Stats read with, for each server, why it did not answer (or nil);
// or errNotConverged after bound.
func (h *herdProcs) converge(ctx context.Context, bound time.Duration) (time.Duration, []herd.Stats, []error, error) {
	t0 := time.Now()
	stats := make([]herd.Stats, len(h.servers))
	errs := make([]error, len(h.servers))
	for {
		same := true
		for i, s := range h.servers {
			st, err := h.stats(ctx, s)
			if err != nil {
				same = false
			}
			stats[i], errs[i] = st, err
			if st.Digest != stats[0].Digest || st.Clients != stats[0].Clients {
				same = false
			}
		}
		took := time.Since(t0)
		if same {
			return took, stats, errs, nil
		}
		if took >= bound {
			return took, stats, errs, errNotConverged
		}
		select {
		case <-ctx.Done():
			return took, stats, errs, ctx.Err()
		case <-time.After(procPoll):
		}
	}
}
