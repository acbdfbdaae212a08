package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestServeReopensLogOnSIGHUP does what logrotate does to a "herd serve"
// process: it moves the log file away and sends SIGHUP. The server keeps
// serving, the lines before the signal are in the moved file, and the
// lines after it in a new file of the old name.
func TestServeReopensLogOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	addr := freePorts(t, 1)[0]
	logPath := filepath.Join(dir, "logs", "Goloman.log")
	cfgPath := filepath.Join(dir, "herd.json")
	cfg := fmt.Sprintf(`{
  "servers": [{"name": "Goloman", "addr": %q}],
  "provider": {"kind": "offline"},
  "log": %q,
  "log_lines": true
}`, addr, logPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "Goloman", childEnv(), bins["herd"], "serve", "-config", cfgPath, "-name", "Goloman")
	p.expectLine(t, listening)

	before := iamat(t, addr, "before", "+34.068930-118.445127", "1520023934.5")
	waitLog(t, logPath, regexp.MustCompile(`DEBUG Goloman out conn=c\d+ line="`+regexp.QuoteMeta(before)+`"`))
	moved := logPath + ".1"
	if err := os.Rename(logPath, moved); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logPath, regexp.MustCompile(`INFO log file reopened \(SIGHUP\)`))
	after := iamat(t, addr, "after", "+34.068930-118.445127", "1520023935.5")
	p.stop(t, syscall.SIGTERM)

	old, err := os.ReadFile(moved)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(old), `line="IAMAT before `) || strings.Contains(string(old), `line="IAMAT after `) {
		t.Errorf("moved log:\n%s", old)
	}
	if !strings.Contains(string(cur), `line="`+after+`"`) || strings.Contains(string(cur), "before") || !strings.HasSuffix(string(cur), "INFO Goloman closed\n") {
		t.Errorf("new log:\n%s", cur)
	}
	if got := p.stderr.String(); !strings.HasSuffix(got, "herd serve: Goloman: shut down\n") {
		t.Errorf("stderr:\n%s", got)
	}
}
