package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestServeDefaultsLimitPlacesCalls: with herd serve's defaults, 2,000
// WHATSATs within two seconds from one connection, differing only in
// the radius (so the cache cannot help), cause at most 100 provider
// calls, and every one gets a complete reply. Without a secret, serve
// says so and how to set one.
func TestServeDefaultsLimitPlacesCalls(t *testing.T) {
	const total = 2000
	port := strconv.Itoa(reservePorts(t, 5))
	s := serveInProcess(t, true, "-preset", "2018", "-port", port, "-name", "Goloman", "-metrics", "127.0.0.1:0", "-log-level", "error")
	s.stderr.waitFor(t, "serve's notices",
		regexp.MustCompile("(?m)^herd serve: Goloman: no peer secret: peer links are not authenticated and are made over loopback only; set one with -secret-env VAR$"))

	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	var req strings.Builder
	fmt.Fprintf(&req, "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 %d.%09d\n", now.Unix(), now.Nanosecond())
	for i := range total {
		fmt.Fprintf(&req, "WHATSAT kiwi.cs.ucla.edu %d.%03d 5\n", 1+i/1000, i%1000)
	}
	start := time.Now()
	go c.Write([]byte(req.String()))
	r := bufio.NewReader(c)
	at, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(at, "AT Goloman ") {
		t.Fatalf("IAMAT: %q, %v", at, err)
	}
	limited := 0
	for i := range total {
		var reply strings.Builder
		for !strings.HasSuffix(reply.String(), "\n\n") {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reply %d: %v after %q", i, err, reply.String())
			}
			reply.WriteString(line)
		}
		got := reply.String()
		if !strings.HasPrefix(got, at+"{\n") || !strings.HasSuffix(got, "}\n\n") {
			t.Fatalf("reply %d: %q", i, got)
		}
		if strings.Contains(got, `"status" : "OVER_QUERY_LIMIT"`) {
			limited++
		}
	}
	elapsed := time.Since(start)
	vars, _ := getVars(t, s.vars)
	st := herdStats(t, vars)
	t.Logf("%d replies in %v: %d provider calls, %d limited", total, elapsed, st.PlacesCalls, st.PlacesLimited)
	if st.PlacesCalls > 100 || st.PlacesCalls+st.PlacesLimited != total || st.PlacesLimited != uint64(limited) || st.WHATSAT != total {
		t.Fatalf("stats %+v", st)
	}
}

// TestServePresetSecurityFlags: the protected-mode, MaxClientAhead and
// limit flags of -preset mode become the config file's keys.
func TestServePresetSecurityFlags(t *testing.T) {
	e, out, errOut := testEnv(nil)
	code := run(context.Background(), e, []string{"serve", "-preset", "2016", "-port", "13000", "-insecure-peers", "-max-client-ahead", "-1s",
		"-places-conn-rate", "2.5", "-places-conn-burst", "4", "-places-addr-rate", "-1", "-places-server-burst", "9", "-places-daily-budget", "500", "-print-config"})
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	_, rest, _ := strings.Cut(out.String(), `["Hamilton","Holiday"]`+"\n  ],\n")
	want := `  "insecure_peers": true,
  "max_client_ahead": "-1s",
  "places_conn_rate": 2.5,
  "places_conn_burst": 4,
  "places_addr_rate": -1,
  "places_server_burst": 9,
  "places_daily_budget": 500
}
`
	if diff := cmp.Diff(want, rest); diff != "" {
		t.Fatalf("config (-want +got):\n%s\n%s", diff, out)
	}
	fc, err := parseConfig([]byte(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	if fc.parsed.maxClientAhead != -time.Second || !fc.InsecurePeers || fc.ConnRate != 2.5 || fc.DailyBudget != 500 {
		t.Fatalf("parsed %+v", fc)
	}

	for _, f := range []string{"-insecure-peers", "-max-client-ahead=1h", "-places-conn-rate=1", "-places-daily-budget=1"} {
		e, _, errOut := testEnv(nil)
		args := []string{"serve", "-config", "x.json", "-name", "A", f}
		f, _, _ = strings.Cut(f, "=")
		if code := run(context.Background(), e, args); code != exitUsage || !strings.HasPrefix(errOut.String(), "herd serve: "+f+" goes with -preset; with -config, set it in the file\n") {
			t.Errorf("-%s with -config: exit %d, %q", f, code, errOut)
		}
	}
}
