package herd_test

import (
	"context"
	"fmt"
	"log"
	"net"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/client"
)

// New validates the whole Config before anything starts and names every
// invalid field, in one line.
func ExampleNew() {
	_, err := herd.New(herd.Config{
		Name:  "Goloman",
		Addr:  "12000",
		Peers: []herd.Peer{{Name: "Goloman"}},
	})
	fmt.Println(err)
	// Output:
	// herd: invalid config: Addr: "12000": missing port in address; Peers[0].Name: "Goloman" is this node's own name
}

// A PlacesFunc is the smallest Places provider: here one that knows a
// single place. The node cuts the provider's results to the WHATSAT
// bound and applies the protocol's newline rules.
func ExamplePlacesFunc() {
	ctx := context.Background()
	provider := herd.PlacesFunc(func(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
		fmt.Printf("asked for %d results within %v m of %v,%v\n", q.MaxResults, q.RadiusMeters, q.Lat, q.Lon)
		return []byte(`{"results": [{"name": "Boelter Hall"}, {"name": "Royce Hall"}], "status": "OK"}`), nil
	})
	n, err := herd.New(herd.Config{Name: "Goloman", Addr: "127.0.0.1:0", Places: provider})
	if err != nil {
		log.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	c, err := client.Dial(ctx, n.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.IAMATText(ctx, "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997"); err != nil {
		log.Fatal(err)
	}
	nb, err := c.WHATSAT(ctx, "kiwi.cs.ucla.edu", 1.5, 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(nb.JSON))
	// Output:
	// asked for 1 results within 1500 m of 34.06893,-118.445127
	// {"results": [{"name": "Boelter Hall"}], "status": "OK"}
}

// Two linked servers in one process, each started from a listener the
// caller opened on a free port, so that each knows the other's address
// before either starts. Changed and Lookup wait, without sleeping, until a
// report made at one server has reached the other.
func ExampleNode_Changed() {
	ctx := context.Background()
	lnA, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	lnB, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	a, err := herd.New(herd.Config{Name: "Goloman", Listener: lnA,
		Peers: []herd.Peer{{Name: "Hands", Addr: lnB.Addr().String()}}})
	if err != nil {
		log.Fatal(err)
	}
	b, err := herd.New(herd.Config{Name: "Hands", Listener: lnB,
		Peers: []herd.Peer{{Name: "Goloman", Addr: lnA.Addr().String()}}})
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range []*herd.Node{a, b} {
		if err := n.Start(ctx); err != nil {
			log.Fatal(err)
		}
		defer n.Close()
	}

	c, err := client.Dial(ctx, a.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.IAMATText(ctx, "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997"); err != nil {
		log.Fatal(err)
	}

	for {
		changed := b.Changed() // before Lookup, so that no change is missed
		if r, ok := b.Lookup("kiwi.cs.ucla.edu"); ok {
			fmt.Println(b.Name(), "has", r.Client, "at", r.Location, "as reported to", r.Server)
			break
		}
		<-changed
	}
	// Output:
	// Hands has kiwi.cs.ucla.edu at +34.068930-118.445127 as reported to Goloman
}
