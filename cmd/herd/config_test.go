package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/go-multierror"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/cli"
)

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       []string
	}{
		{"empty", ``, []string{"empty file: want a JSON object"}},
		{"syntax", "{\n  \"servers\": [,]\n}", []string{"2:15: invalid character ',' looking for beginning of value"}},
		{"type", "{\n  \"servers\": [{\"name\": 5}]\n}", []string{"2:24: servers.name must be a string, not number"}},
		{"unknown field", `{"servers": [], "peers": []}`, []string{`unknown field "peers"`}},
		{"trailing", `{"servers": [{"name": "A", "addr": "h:1"}]} []`, []string{"1:45: unexpected data after the config object"}},
		{"no servers", `{}`, []string{"servers: must list at least one server"}},
		{"everything wrong", `{
  "servers": [
    {"name": "Goloman", "addr": "127.0.0.1:12000"},
    {"name": "Hands", "addr": "127.0.0.1"},
    {"name": "Goloman", "addr": "127.0.0.1:0"},
    {"name": "Big Name", "addr": "h:70000", "listen": ":x"},
    {"name": "", "addr": ""}
  ],
  "links": [["Goloman", "Hands"], ["Hands", "Goloman"], ["Goloman", "Nobody"], ["Goloman"], ["Hands", "Hands"]],
  "provider": {"kind": "offline", "cache_ttl": 5},
  "secret": "a", "secret_env": "B",
  "max_line_bytes": 10, "peer_queue": -1,
  "redial_min": "1s", "redial_max": "10ms", "idle_timeout": "5 minutes", "write_timeout": "-1s",
  "log_level": "loud", "log_format": "xml", "log_max_mb": -1, "log_keep": -2
}`, []string{
			`servers[1].addr: "127.0.0.1": missing port in address`,
			`servers[2].name: "Goloman" is already servers[0]`,
			`servers[2].addr: "127.0.0.1:0": port 0: the other servers could not reach it`,
			`servers[3].name: "Big Name" must not contain white space`,
			`servers[3].addr: "h:70000": port "70000" is not a number from 1 to 65535`,
			`servers[3].listen: ":x": port "x" is not a number from 1 to 65535`,
			`servers[4].name: must not be empty`,
			`servers[4].addr: must not be empty (host:port where the others reach )`,
			`links[1]: Hands-Goloman is already links[0]`,
			`links[2]: "Nobody" is not in servers`,
			`links[3]: want a pair of server names, got 1 names`,
			`links[4]: links "Hands" with itself`,
			`provider.cache_ttl: must be a string, not number`,
			`secret: set secret or secret_env, not both`,
			`max_line_bytes: must be at least 64 (or 0 or absent for the default), got 10`,
			`peer_queue: must be at least 1 (or 0 or absent for the default), got -1`,
			`idle_timeout: "5 minutes" is not a duration (want e.g. "250ms", "10s", "1m")`,
			`write_timeout: must not be negative, got "-1s"`,
			`redial_max: 10ms is below redial_min 1s`,
			`log_level: "loud" is not a log level (want debug, info, warn or error)`,
			`log_format: "xml" is not a log format (want text or json)`,
			`log_max_mb: -1: want 0 (the default, 100) or more`,
			`log_keep: -2: want 0 (the default, 10) or more`,
		}},
		{"security and limits", `{
  "servers": [{"name": "A", "addr": "h:1"}],
  "max_client_ahead": "soon", "peer_clock_allowance": "-1s",
  "places_conn_burst": -1, "places_addr_burst": -2, "places_server_burst": -3
}`, []string{
			`peer_clock_allowance: must not be negative, got "-1s"`,
			`max_client_ahead: "soon" is not a duration (want e.g. "1h", or "-1s" to turn the check off)`,
			`places_conn_burst: must not be negative (or 0 or absent for the default), got -1`,
			`places_addr_burst: must not be negative (or 0 or absent for the default), got -2`,
			`places_server_burst: must not be negative (or 0 or absent for the default), got -3`,
		}},
		{"limit type", "{\"servers\": [{\"name\": \"A\", \"addr\": \"h:1\"}],\n \"places_conn_rate\": \"fast\"}",
			[]string{`2:27: places_conn_rate must be a number, not string`}},
		{"ack", `{"servers": [{"name": "A", "addr": "h:1"}], "ack": "fsync"}`,
			[]string{`ack: "fsync" is not an ack mode (want table or durable)`}},
		{"durable without state", `{"servers": [{"name": "A", "addr": "h:1"}], "ack": "durable"}`,
			[]string{`ack: "durable" needs state_file (or -state-file): the log it waits for`}},
		{"provider unknown field", `{"servers": [{"name": "A", "addr": "h:1"}], "provider": {"kind": "offline", "api_key": "x"}}`,
			[]string{`provider: unknown field "api_key"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.json))
			if err == nil {
				t.Fatal("no error")
			}
			var got []string
			var me *multierror.Error
			if errors.As(err, &me) {
				for _, e := range me.Errors {
					got = append(got, e.Error())
				}
				if want := strings.Join(got, "\n"); err.Error() != want {
					t.Errorf("Error() = %q, want one problem per line", err.Error())
				}
			} else {
				got = []string{err.Error()}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeConfig(t *testing.T) {
	fc, err := parseConfig([]byte(`{
  "servers": [
    {"name": "Goloman", "addr": "10.0.0.1:12000", "listen": ":12000"},
    {"name": "Hands", "addr": "10.0.0.2:12001"},
    {"name": "Wilkes", "addr": "10.0.0.3:12004"}
  ],
  "links": [["Hands", "Goloman"], ["Goloman", "Wilkes"], ["Hands", "Wilkes"]],
  "provider": {"kind": "legacy", "key_env": "MY_KEY", "base_url": "http://127.0.0.1:9", "retries": -1},
  "secret": "s3cret",
  "max_line_bytes": 4096, "peer_queue": 100, "max_conns": 10, "max_clients": 20, "reply_buffer": 8192,
  "places_timeout": "3s", "redial_min": "10ms", "redial_max": "1s", "handshake_timeout": "2s",
  "idle_timeout": "1m", "write_timeout": "5s", "state_interval": "30s",
  "close_after_reply": true,
  "insecure_peers": true, "max_client_ahead": "-1s", "peer_clock_allowance": "2m",
  "places_conn_rate": 2.5, "places_conn_burst": 5, "places_addr_rate": -1, "places_server_burst": 7, "places_daily_budget": 100,
  "state_file": "/var/lib/herd/{name}.state", "ack": "durable",
  "log": "/var/log/herd/{name}.log", "log_level": "warn", "log_lines": true, "log_format": "json",
  "log_max_mb": 50, "log_keep": 3
}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg, places, err := fc.nodeConfig("Goloman", func(k string) string { return map[string]string{"MY_KEY": "k"}[k] }, cli.JSONNames("provider"))
	if err != nil {
		t.Fatal(err)
	}
	defer places.Close()
	if cfg.Places != places || places.String() != "Google Places Nearby Search (legacy) at http://127.0.0.1:9" {
		t.Errorf("places = %v", places)
	}
	want := herd.Config{
		Name:             "Goloman",
		Addr:             ":12000",
		Peers:            []herd.Peer{{Name: "Hands", Addr: "10.0.0.2:12001"}, {Name: "Wilkes", Addr: "10.0.0.3:12004"}},
		Secret:           []byte("s3cret"),
		MaxLineBytes:     4096,
		PeerQueue:        100,
		MaxConns:         10,
		MaxClients:       20,
		ReplyBuffer:      8192,
		PlacesTimeout:    3 * time.Second,
		RedialMin:        10 * time.Millisecond,
		RedialMax:        time.Second,
		HandshakeTimeout: 2 * time.Second,
		IdleTimeout:      time.Minute,
		WriteTimeout:     5 * time.Second,
		StateInterval:    30 * time.Second,
		CloseAfterReply:  true,
		StateFile:        "/var/lib/herd/Goloman.state",

		InsecurePeers:      true,
		MaxClientAhead:     -time.Second,
		PeerClockAllowance: 2 * time.Minute,
		PlacesLimits:       herd.PlacesLimits{ConnRate: 2.5, ConnBurst: 5, AddrRate: -1, ServerBurst: 7, DailyBudget: 100},
		Ack:                herd.AckDurable,
	}
	if diff := cmp.Diff(want, cfg, cmpopts.IgnoreFields(herd.Config{}, "Places")); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	wantLog := cli.LogConfig{Path: "/var/log/herd/Hands.log", Level: "warn", Lines: true, Format: "json", MaxMB: 50, Keep: 3}
	if got := fc.logConfig("Hands"); got != wantLog {
		t.Errorf("logConfig = %+v, want %+v", got, wantLog)
	}
	if _, err := herd.New(cfg); err != nil {
		t.Errorf("herd.New: %v", err)
	}

	// Without the key in the environment.
	_, _, err = fc.nodeConfig("Goloman", func(string) string { return "" }, cli.JSONNames("provider"))
	if want := `provider.key: must be set for kind "legacy" (the key comes from $MY_KEY, which is empty or unset)`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}
