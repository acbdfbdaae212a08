package herd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestCloseDrainsWhatItAcknowledged: a node closed while a client
// pipelines thousands of reports answers what it has read, and every
// report it answered reaches the neighbour before the link closes.
func TestCloseDrainsWhatItAcknowledged(t *testing.T) {
	holiday := startNode(t, Config{Name: "Holiday", Peers: []Peer{{Name: "Welsh", Addr: "127.0.0.1:1"}}})
	welsh := startNode(t, Config{Name: "Welsh", Peers: []Peer{{Name: "Holiday", Addr: holiday.Addr().String()}}})
	waitNode(t, welsh, "the link", func(n *Node) bool { return len(n.Links()) == 1 })

	c, err := net.Dial("tcp", welsh.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const reports = 3000
	go func() {
		var b strings.Builder
		for i := range reports {
			fmt.Fprintf(&b, "IAMAT drain%04d +34.068930-118.445127 1520023934.%09d\n", i, i)
		}
		c.Write([]byte(b.String()))
	}()
	r := bufio.NewReader(c)
	var acked []string
	closed := make(chan struct{})
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break // Welsh closed the connection
		}
		acked = append(acked, strings.TrimSuffix(line, "\n"))
		if len(acked) == 500 {
			go func() { welsh.Close(); close(closed) }()
		}
	}
	<-closed
	if len(acked) < 500 {
		t.Fatalf("only %d replies", len(acked))
	}
	holdsAll := func(n *Node) bool {
		for _, at := range acked {
			if r, ok := n.Lookup(strings.Fields(at)[3]); !ok || r.Line != at {
				return false
			}
		}
		return true
	}
	waitNode(t, holiday, fmt.Sprintf("all %d reports Welsh answered", len(acked)), holdsAll)
	t.Logf("Welsh answered %d of %d reports before closing; Holiday holds every one", len(acked), reports)
}

// TestRestartedServerRelinksAtOnce: a server whose neighbours all sort
// before it (they keep the links up) restarts while they wait out a long
// redial backoff: its knock brings the links up at once.
func TestRestartedServerRelinksAtOnce(t *testing.T) {
	slow := func(cfg Config) Config {
		cfg.RedialMin, cfg.RedialMax = time.Hour, time.Hour
		return cfg
	}
	welshCfg := Config{Name: "Welsh", Addr: "127.0.0.1:0", Peers: []Peer{{Name: "Holiday", Addr: "127.0.0.1:1"}}}
	welsh := startNode(t, slow(welshCfg))
	welshAddr := welsh.Addr().String()
	holiday := startNode(t, slow(Config{Name: "Holiday", Peers: []Peer{{Name: "Welsh", Addr: welshAddr}}}))
	waitNode(t, holiday, "the link", func(n *Node) bool { return len(n.Links()) == 1 })

	welsh.Close() // Holiday's dial loop now waits an hour
	waitNode(t, holiday, "the link down", func(n *Node) bool { return len(n.Links()) == 0 })
	welshCfg.Addr = welshAddr
	welshCfg.Peers[0].Addr = holiday.Addr().String()
	again, err := New(slow(welshCfg))
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.Close() })
	waitNode(t, again, "the link", func(n *Node) bool { return len(n.Links()) == 1 })
	c := dialNode(t, again)
	c.send("IAMAT back.again +1.0+1.0 1520023934.5\n")
	at := strings.TrimSuffix(c.line(), "\n")
	waitNode(t, holiday, "Welsh's report", hasLine("back.again", at))
}
