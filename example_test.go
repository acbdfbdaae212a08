package herd_test

import (
	"context"
	"fmt"
	"log"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/client"
	"github.com/proxyherd/herd/places"
)

// Embedding a server: Run serves until its context ends and returns nil
// after a clean shutdown, so the deferred Close of the Places provider
// runs and the process can exit 0. A service's main would take ctx from
// signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM).
func ExampleNode_Run() {
	ctx, stop := context.WithCancel(context.Background())
	if err := serve(ctx, stop); err != nil {
		log.Fatal(err) // only for real failures: Run returns nil on a clean shutdown
	}
	fmt.Println("shut down cleanly")
	// Output:
	// Goloman holds kiwi.cs.ucla.edu at +34.068930-118.445127
	// shut down cleanly
}

// serve runs one server until ctx ends; here, once it has answered one
// client, it calls stop as a SIGTERM would.
func serve(ctx context.Context, stop func()) error {
	pl, err := places.New(places.Config{Kind: places.KindOffline}, nil)
	if err != nil {
		return err
	}
	defer pl.Close() // after Run has closed the node
	n, err := herd.New(herd.Config{Name: "Goloman", Addr: "127.0.0.1:0", Places: pl})
	if err != nil {
		return err // every invalid field is named
	}
	go func() {
		defer stop()
		for { // wait until it listens, without sleeping
			changed := n.Changed()
			if n.Addr() != nil {
				break
			}
			<-changed
		}
		c, err := client.Dial(ctx, n.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		if at, err := c.IAMATText(ctx, "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997"); err == nil {
			fmt.Println(at.Server, "holds", at.Client, "at", at.Location)
		}
	}()
	return n.Run(ctx)
}
