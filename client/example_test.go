package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/client"
)

// stoppedClock is a herd.Clock stopped at one instant, so that the
// example's output is always the same. Real servers use the system clock.
type stoppedClock struct{ now time.Time }

func (c stoppedClock) Now() time.Time { return c.now }
func (c stoppedClock) AfterFunc(d time.Duration, f func()) herd.Timer {
	return time.AfterFunc(d, f)
}

func Example() {
	ctx := context.Background()

	// A one-server herd on a free loopback port. Its clock is stopped at
	// 1520023935.182837383 so that the time difference below is fixed.
	node, err := herd.New(herd.Config{
		Name:  "Goloman",
		Addr:  "127.0.0.1:0",
		Clock: stoppedClock{time.Unix(1520023935, 182837383)},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := node.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer node.Close()

	c, err := client.Dial(ctx, node.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Report where kiwi is. The reply is the AT line the server stores.
	at, err := c.IAMAT(ctx, "kiwi.cs.ucla.edu", "+34.068930-118.445127", time.Unix(1520023934, 918963997))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(at.Line)
	skew, _ := at.SkewDuration()
	fmt.Println(at.Server, "received it", skew, "after the client sent it")

	// A bound of 0 asks no Places provider: it reads the server's record.
	nb, err := c.WHATSAT(ctx, "kiwi.cs.ucla.edu", 10, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s", nb.Bytes())

	// The server answers "? " for what it considers invalid, such as a
	// client it has never heard of.
	_, err = c.WHATSAT(ctx, "nobody", 10, 5)
	var inv *client.InvalidError
	if errors.As(err, &inv) {
		fmt.Println(inv.Line)
	}
	// Output:
	// AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997
	// Goloman received it 263.873386ms after the client sent it
	// AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997
	// {
	//    "html_attributions" : [],
	//    "results" : [],
	//    "status" : "OK"
	// }
	//
	// ? WHATSAT nobody 10 5
}
