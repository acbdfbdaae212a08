package cli

import (
	"encoding/json"
	"expvar"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckHTTPAddr(t *testing.T) {
	for addr, want := range map[string]struct {
		loopback bool
		err      string
	}{
		"127.0.0.1:9100":   {true, ""},
		"127.0.0.2:0":      {true, ""},
		"[::1]:9100":       {true, ""},
		"localhost:9100":   {true, ""},
		":9100":            {false, ""},
		"0.0.0.0:9100":     {false, ""},
		"[::]:9100":        {false, ""},
		"10.0.0.1:9100":    {false, ""},
		"example.com:9100": {false, ""},
		"127.0.0.1":        {false, `"127.0.0.1": missing port in address`},
		"127.0.0.1:http":   {false, `"127.0.0.1:http": port "http" is not a number from 0 to 65535`},
		"127.0.0.1:70000":  {false, `"127.0.0.1:70000": port "70000" is not a number from 0 to 65535`},
	} {
		loopback, err := CheckHTTPAddr(addr)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if loopback != want.loopback || got != want.err {
			t.Errorf("CheckHTTPAddr(%q) = %v, %q; want %v, %q", addr, loopback, got, want.loopback, want.err)
		}
	}
}

// TestMetricsHandlerMirrorsExpvar: the handler serves what expvar's own
// handler serves, plus its variables, without publishing them.
func TestMetricsHandlerMirrorsExpvar(t *testing.T) {
	get := func(h http.Handler, path string) (int, map[string]json.RawMessage) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		var vars map[string]json.RawMessage
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &vars); err != nil {
				t.Fatalf("%s: %v\n%s", path, err, rec.Body)
			}
		}
		return rec.Code, vars
	}
	var calls int
	h := MetricsHandler(map[string]expvar.Var{
		"herd":    expvar.Func(func() any { calls++; return map[string]int{"IAMAT": calls} }),
		"cmdline": expvar.Func(func() any { return "mine" }),
	})
	_, global := get(expvar.Handler(), "/debug/vars")
	code, got := get(h, "/debug/vars")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	for k := range global {
		if _, ok := got[k]; !ok {
			t.Errorf("expvar's %q is missing", k)
		}
	}
	if string(got["herd"]) != `{"IAMAT":1}` || string(got["cmdline"]) != `"mine"` {
		t.Errorf("herd %s, cmdline %s", got["herd"], got["cmdline"])
	}
	if _, again := get(h, "/debug/vars"); string(again["herd"]) != `{"IAMAT":2}` {
		t.Errorf("second read: herd %s: the value is read at each request", again["herd"])
	}
	if expvar.Get("herd") != nil {
		t.Error("the handler published its variable in expvar's global registry")
	}
	if code, _ := get(h, "/"); code != http.StatusNotFound {
		t.Errorf("GET / = %d, want 404", code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/debug/vars", strings.NewReader("")))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", rec.Code)
	}
}
