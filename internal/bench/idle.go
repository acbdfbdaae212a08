package bench

// idle.go: "herd bench idle", what an idle client connection costs
// a server. It opens N connections, lets the server settle, and compares
// the server's resident memory (/proc/PID/status VmRSS and
// /proc/PID/smaps_rollup) before and after. Linux only, since it reads
// /proc; without a pid it still opens and holds the connections.

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/proxyherd/herd/internal/cli"
)

type idleOptions struct {
	addr        string
	n           int
	pid         int
	settle      time.Duration
	hold        time.Duration
	touch       bool
	dialTimeout time.Duration
}

// procMem is what /proc says of a process's memory, in bytes.
type procMem struct {
	VmRSS     int64 `json:"vm_rss"`
	Rss       int64 `json:"rss"`       // smaps_rollup
	Pss       int64 `json:"pss"`       // smaps_rollup
	Anonymous int64 `json:"anonymous"` // smaps_rollup
}

type idleResult struct {
	Addr   string `json:"addr"`
	Pid    int    `json:"pid,omitempty"`
	Opened int    `json:"opened"`
	Open   int    `json:"open_after_settle"` // still open when measured
	// Before and After are the server's memory, when a pid is known.
	Before *procMem `json:"before,omitempty"`
	After  *procMem `json:"after,omitempty"`
	// PerConn is (After.VmRSS - Before.VmRSS) / Opened, in bytes.
	PerConn float64 `json:"rss_per_conn"`
	// KernelTCPPerConn is the growth of the kernel's TCP memory
	// (/proc/net/sockstat, both ends of every loopback connection) per
	// connection, in bytes. Not part of any process's RSS.
	KernelTCPPerConn float64 `json:"kernel_tcp_per_conn"`
}

func idleFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	var o idleOptions
	fs.StringVar(&o.addr, "addr", cli.DefaultAddr, "server `address`")
	fs.IntVar(&o.n, "n", 10000, "connections to open")
	fs.IntVar(&o.pid, "pid", 0, "the server's process `id` (default: the process listening on -addr, if /proc shows it)")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "wait this long after the last connection before measuring")
	fs.DurationVar(&o.hold, "hold", 0, "keep the connections open this long after measuring (or until SIGINT)")
	fs.BoolVar(&o.touch, "touch", false, "send one request on each connection (WHATSAT of an unknown client) and read its reply, so every session has served a line")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 5*time.Second, "bound on each connect")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	return func(ctx context.Context, e *env, _ []string) int {
		switch {
		case o.n < 1 || o.n > 1_000_000:
			return benchUsage(e, "idle", "-n %d: want 1 to 1000000", o.n)
		case o.settle < 0 || o.hold < 0:
			return benchUsage(e, "idle", "-settle and -hold: want 0 or more")
		}
		res, err := runIdle(ctx, o, e.stderr)
		if err != nil {
			fmt.Fprintf(e.stderr, "herd bench idle: %v\n", err)
			return exitFailure
		}
		if *asJSON {
			writeJSON(e, res)
		} else {
			printIdle(e.stdout, res)
		}
		if res.Open < res.Opened {
			return exitFailure
		}
		return exitOK
	}
}

func printIdle(w io.Writer, r *idleResult) {
	fmt.Fprintf(w, "idle %s: %d connections opened, %d still open when measured\n", r.Addr, r.Opened, r.Open)
	if r.Before == nil || r.After == nil {
		fmt.Fprintf(w, "  server memory unknown (give -pid)\n")
	} else {
		n := float64(r.Opened)
		fmt.Fprintf(w, "  server pid %d: VmRSS %s -> %s: %.2f KiB per connection\n", r.Pid, fmtBytes(r.Before.VmRSS), fmtBytes(r.After.VmRSS), r.PerConn/1024)
		if r.After.Rss > 0 {
			fmt.Fprintf(w, "  smaps_rollup per connection: Rss %.2f KiB, Pss %.2f KiB, Anonymous %.2f KiB\n",
				float64(r.After.Rss-r.Before.Rss)/n/1024, float64(r.After.Pss-r.Before.Pss)/n/1024, float64(r.After.Anonymous-r.Before.Anonymous)/n/1024)
		}
	}
	fmt.Fprintf(w, "  kernel TCP memory (both ends, not in RSS): %.2f KiB per connection\n", r.KernelTCPPerConn/1024)
}

func fmtBytes(b int64) string {
	return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB"
}

// runIdle opens the connections, measures, holds them for o.hold or until
// ctx is done, and closes them. Progress notes go to log.
func runIdle(ctx context.Context, o idleOptions, log io.Writer) (*idleResult, error) {
	if err := raiseFileLimit(uint64(o.n) + 64); err != nil {
		return nil, err
	}
	res := &idleResult{Addr: o.addr, Pid: o.pid}
	if res.Pid == 0 {
		res.Pid = listenerPid(o.addr)
	}
	settle := func(d time.Duration) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	if res.Pid != 0 {
		res.Before = readProcMem(res.Pid)
	}
	tcpBefore := kernelTCPPages()

	conns := make([]net.Conn, 0, o.n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	d := net.Dialer{Timeout: o.dialTimeout}
	for i := 0; i < o.n; i++ {
		c, err := d.DialContext(ctx, "tcp", o.addr)
		if err != nil {
			return nil, fmt.Errorf("connection %d of %d: %w", i+1, o.n, err)
		}
		conns = append(conns, c)
	}
	res.Opened = len(conns)
	if o.touch {
		if err := touchAll(conns, o.dialTimeout); err != nil {
			return nil, err
		}
	}
	settle(o.settle)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if res.Pid != 0 {
		res.After = readProcMem(res.Pid)
		if res.Before != nil && res.After != nil {
			res.PerConn = float64(res.After.VmRSS-res.Before.VmRSS) / float64(res.Opened)
		}
	}
	if tcpBefore >= 0 {
		if after := kernelTCPPages(); after >= 0 {
			res.KernelTCPPerConn = float64((after-tcpBefore)*int64(os.Getpagesize())) / float64(res.Opened)
		}
	}
	for _, c := range conns {
		if stillOpen(c) {
			res.Open++
		}
	}
	if o.hold > 0 {
		fmt.Fprintf(log, "herd bench idle: holding %d connections for %v (SIGINT to stop)\n", len(conns), o.hold)
		settle(o.hold)
	}
	return res, nil
}

// touchAll sends one request on every connection, then reads every reply.
func touchAll(conns []net.Conn, timeout time.Duration) error {
	req := []byte("WHATSAT bench-idle-" + runID() + " 1 0\n")
	for i, c := range conns {
		c.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.Write(req); err != nil {
			return fmt.Errorf("touch connection %d: %w", i+1, err)
		}
	}
	buf := make([]byte, 512)
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(timeout))
		got := 0
		for !bytes.Contains(buf[:got], []byte("\n")) {
			if got == len(buf) {
				return fmt.Errorf("touch connection %d: reply longer than %d bytes", i+1, len(buf))
			}
			n, err := c.Read(buf[got:])
			got += n
			if err != nil {
				return fmt.Errorf("touch connection %d: %w", i+1, err)
			}
		}
		c.SetDeadline(time.Time{})
	}
	return nil
}

// stillOpen reports whether the server has not closed c, without blocking:
// a non-blocking peek sees EOF on a closed connection and EAGAIN on an
// open, idle one.
func stillOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := true
	var buf [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = (n > 0 && err == nil) || err == syscall.EAGAIN
		return true
	})
	return open
}

// raiseFileLimit raises this process's soft RLIMIT_NOFILE to at least
// want, up to the hard limit.
func raiseFileLimit(want uint64) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur >= want {
		return nil
	}
	if rl.Max < want {
		return fmt.Errorf("open files: need %d, hard limit is %d (raise it with ulimit -Hn as root)", want, rl.Max)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	return nil
}

// readProcMem reads pid's memory figures, or returns nil if /proc does not
// have them.
func readProcMem(pid int) *procMem {
	var m procMem
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	m.VmRSS = procKB(status, "VmRSS:")
	if rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		m.Rss = procKB(rollup, "Rss:")
		m.Pss = procKB(rollup, "Pss:")
		m.Anonymous = procKB(rollup, "Anonymous:")
	}
	return &m
}

// procKB returns the "key  123 kB" value from a /proc file, in bytes.
func procKB(text []byte, key string) int64 {
	for line := range strings.SplitSeq(string(text), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v << 10
			}
		}
	}
	return 0
}

// kernelTCPPages returns the pages of memory the kernel holds for TCP
// sockets (/proc/net/sockstat "TCP: ... mem N"), or -1.
func kernelTCPPages() int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "TCP:") {
			continue
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "mem" {
				v, err := strconv.ParseInt(f[i+1], 10, 64)
				if err == nil {
					return v
				}
			}
		}
	}
	return -1
}

// listenerPid returns the pid of the process with a TCP socket listening
// on addr's port, found through /proc/net/tcp{,6} and /proc/PID/fd, or 0.
func listenerPid(addr string) int {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return 0
	}
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st ... inode
			fl := strings.Fields(sc.Text())
			if len(fl) < 10 || fl[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, p, ok := strings.Cut(fl[1], ":")
			if v, err := strconv.ParseUint(p, 16, 16); ok && err == nil && v == port {
				inodes["socket:["+fl[9]+"]"] = true
			}
		}
		f.Close()
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(p + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(p + "/fd/" + fd.Name()); err == nil && inodes[link] {
				return pid
			}
		}
	}
	return 0
}
