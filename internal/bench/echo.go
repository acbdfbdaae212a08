package bench

// echo.go: "herd bench echo", a bare line-echo server. It does what
// any line-protocol server must do at the least (read lines, write them
// back, flush when no more input is buffered) and nothing else, so
// "herd bench load" against it measures this machine's ceiling for a line
// protocol, the yardstick for a herd server's throughput.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"sync"
	"time"
)

func echoFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	addr := fs.String("addr", "127.0.0.1:0", "listen `address` (port 0 picks a free port)")
	forD := fs.Duration("for", time.Hour, "stop after this `duration` (or at SIGINT or SIGTERM)")
	return func(ctx context.Context, e *env, _ []string) int {
		if *forD <= 0 {
			return benchUsage(e, "echo", "-for %v: want more than 0", *forD)
		}
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			fmt.Fprintf(e.stderr, "herd bench echo: %v\n", err)
			return exitFailure
		}
		srv := serveEcho(ln)
		fmt.Fprintf(e.stdout, "echo listening on %s\n", ln.Addr())
		ctx, cancel := context.WithTimeout(ctx, *forD)
		defer cancel()
		<-ctx.Done()
		srv.close()
		return exitOK
	}
}

// echoServer is a running line-echo server.
type echoServer struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// serveEcho serves line echo on ln until close.
func serveEcho(ln net.Listener) *echoServer {
	s := &echoServer{ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				return // closed
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				echoConn(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
		}
	}()
	return s
}

// close stops accepting, closes every connection and waits for their
// goroutines.
func (s *echoServer) close() {
	s.mu.Lock()
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// echoConn writes every line it reads from c back to c, flushing whenever
// no more input is buffered, until EOF or an error. A line longer than the
// buffer passes through in pieces.
func echoConn(c net.Conn) {
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			if _, werr := w.Write(line); werr != nil {
				return
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			w.Flush()
			return
		}
		if r.Buffered() == 0 {
			if w.Flush() != nil {
				return
			}
		}
	}
}
