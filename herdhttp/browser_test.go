package herdhttp

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/proxyherd/herd/client"
)

// chromium returns the headless browser to test with. Without one the
// test is skipped, except on CI (CI=true), where .ci/run installs Debian's
// chromium package and its absence is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed, and CI=true requires the browser test: apt-get install chromium (.ci/run does)")
	}
	t.Skip("skipping the browser test: chromium is not installed (apt-get install chromium); on CI it runs")
	return ""
}

// TestStatusPageInBrowser loads the status page in headless Chromium and
// checks that it draws the neighbour and a client reported over the
// protocol, then that it picks up a new client by itself.
func TestStatusPageInBrowser(t *testing.T) {
	exe := chromium(t)
	p := startHands(t, Options{Refresh: 200 * time.Millisecond})
	p.startGoloman(t)
	ctx := context.Background()
	c, err := client.Dial(ctx, p.hands.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.IAMAT(ctx, "kiwi.cs.ucla.edu", "+34.068930-118.445127", time.Now()); err != nil {
		t.Fatal(err)
	}

	alloc, cancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// No UserDataDir: the allocator makes a fresh one and removes it
		// once the browser has exited.
		chromedp.WindowSize(1280, 900),
	)
	defer cancel()
	bctx, cancel := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	defer cancel()
	tctx, cancel := context.WithTimeout(bctx, 20*time.Second)
	defer cancel()

	var server, links, recent string
	err = chromedp.Run(tctx,
		chromedp.Navigate(p.srv.URL+"/"),
		chromedp.WaitVisible(`#graph g.peer[data-peer="Goloman"][data-state="up"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#map circle[data-client="kiwi.cs.ucla.edu"]`, chromedp.ByQuery),
		chromedp.Text(`#server`, &server, chromedp.ByQuery),
		chromedp.Text(`#links tbody`, &links, chromedp.ByQuery),
		chromedp.Text(`#recent tbody`, &recent, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("page never showed Goloman up and kiwi.cs.ucla.edu: %v", err)
	}
	if server != "Hands" || !strings.Contains(links, "Goloman") || !strings.Contains(recent, "kiwi.cs.ucla.edu") {
		t.Errorf("server %q, links %q, recent %q", server, links, recent)
	}

	// The page updates itself: a new client appears without a reload.
	if _, err := c.IAMAT(ctx, "lemon.cs.ucla.edu", "+34.070000-118.440000", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Run(tctx, chromedp.WaitVisible(`#map circle[data-client="lemon.cs.ucla.edu"]`, chromedp.ByQuery)); err != nil {
		t.Fatalf("the page never showed a client reported after it loaded: %v", err)
	}
	if path := os.Getenv("HERDHTTP_SCREENSHOT"); path != "" {
		var png []byte
		if err := chromedp.Run(tctx, chromedp.FullScreenshot(&png, 100)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
