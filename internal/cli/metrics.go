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

// MetricsPath is where a metrics server answers: the path of
// expvar.Handler, so tools that read expvar read herd.
const MetricsPath = "/debug/vars"

// CheckMetricsAddr reports whether addr is host:port on a loopback
// address ("127.0.0.1:9100", "[::1]:9100", "localhost:9100"; port 0 picks
// a free port). Metrics are never served beyond the machine: they say how
// busy the server is and how many clients it knows.
func CheckMetricsAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %v", addr, strings.TrimPrefix(err.Error(), "address "+addr+": "))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if host == "" {
		return fmt.Errorf("%q listens on every interface: metrics are served on loopback only (e.g. \"127.0.0.1:%s\")", addr, port)
	}
	return fmt.Errorf("%q is not a loopback address: metrics are served on loopback only (e.g. \"127.0.0.1:%s\")", addr, port)
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

// Metrics is a running metrics server; see [StartMetrics].
type Metrics struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	err  error
	once sync.Once
}

// StartMetrics listens on addr, which must be a loopback address (see
// [CheckMetricsAddr]), and serves h there until Close.
func StartMetrics(ctx context.Context, addr string, h http.Handler) (*Metrics, error) {
	if err := CheckMetricsAddr(addr); err != nil {
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

// URL returns the address of the metrics document.
func (m *Metrics) URL() string { return "http://" + m.ln.Addr().String() + MetricsPath }

// Close stops the server, closing its connections, and waits for it. It
// is idempotent and returns the error that stopped serving early, if any.
func (m *Metrics) Close() error {
	m.once.Do(func() { m.srv.Close() })
	<-m.done
	return m.err
}
