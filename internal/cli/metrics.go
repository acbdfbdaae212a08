package cli

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MetricsPath is where [MetricsHandler] answers: the path of
// expvar.Handler, so tools that read expvar read herd.
const MetricsPath = "/debug/vars"

// CheckHTTPAddr checks that addr is host:port with a numeric port (0
// picks a free port) and reports whether it is on a loopback address
// ("127.0.0.1:9100", "[::1]:9100", "localhost:9100"). Any address is
// allowed: a server behind a scraper on another machine needs one that is
// not loopback, but callers warn then, since the endpoint shows how busy
// the server is and where its clients are.
func CheckHTTPAddr(addr string) (loopback bool, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("%q: %v", addr, strings.TrimPrefix(err.Error(), "address "+addr+": "))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return false, fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// MetricsHandler serves, at [MetricsPath], the process's expvar variables
// (cmdline, memstats and whatever else is published) together with vars,
// as one JSON object in expvar's own format, keys sorted. vars are not
// published in expvar's global registry, so any number of servers (and
// tests) can run in one process; a var of vars hides a global one of the
// same name.
func MetricsHandler(vars map[string]expvar.Var) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+MetricsPath, func(w http.ResponseWriter, r *http.Request) {
		type kv struct{ key, value string }
		var all []kv
		expvar.Do(func(v expvar.KeyValue) {
			if _, mine := vars[v.Key]; !mine {
				all = append(all, kv{v.Key, v.Value.String()})
			}
		})
		for k, v := range vars {
			all = append(all, kv{k, v.String()})
		}
		slices.SortFunc(all, func(a, b kv) int { return strings.Compare(a.key, b.key) })
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, "{\n")
		for i, v := range all {
			if i > 0 {
				io.WriteString(w, ",\n")
			}
			key, _ := json.Marshal(v.key)
			fmt.Fprintf(w, "%s: %s", key, v.value)
		}
		io.WriteString(w, "\n}\n")
	})
	return mux
}

// Metrics is a running HTTP server for a node's endpoints; see
// [StartMetrics].
type Metrics struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	err  error
	once sync.Once
}

// StartMetrics listens on addr (see [CheckHTTPAddr]) and serves h there
// until Close.
func StartMetrics(ctx context.Context, addr string, h http.Handler) (*Metrics, error) {
	if _, err := CheckHTTPAddr(addr); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	m := &Metrics{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			m.err = err
		}
	}()
	return m, nil
}

// Addr returns where the server listens.
func (m *Metrics) Addr() net.Addr { return m.ln.Addr() }

// URL returns the server's base URL, ending in "/".
func (m *Metrics) URL() string { return "http://" + m.ln.Addr().String() + "/" }

// Close stops the server, closing its connections, and waits for it. It
// is idempotent and returns the error that stopped serving early, if any.
func (m *Metrics) Close() error {
	m.once.Do(func() { m.srv.Close() })
	<-m.done
	return m.err
}
