package places

// helpers_test.go: what the provider tests share. The WHATSAT body itself
// belongs to package herd; these tests read it through herd.WhatsatBody,
// as any provider's author would.

import (
	"context"
	"errors"
	"flag"
	"testing"
	"time"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/testfile"
)

var updatePlaces = flag.Bool("update-places", false, "rewrite the golden files under testdata/places and testdata/translate/out")

// placesFixture returns the bytes of testdata/name.
func placesFixture(t testing.TB, name string) []byte { return testfile.Read(t, name) }

// placesFixtureNames lists the provider documents in testdata.
func placesFixtureNames(t testing.TB) []string { return testfile.Names(t, "nearby_*.json") }

// nearby is the node's whole WHATSAT lookup: p asked q under clock, its
// answer or failure turned into the reply body.
func nearby(ctx context.Context, clock herd.Clock, p herd.PlacesClient, timeout time.Duration, q herd.NearbyQuery) []byte {
	return herd.WhatsatBody(ctx, clock, p, timeout, q)
}

// whatsatJSON is the WHATSAT body for the provider document doc and a
// bound of at least 1.
func whatsatJSON(doc []byte, bound int) []byte {
	p := herd.PlacesFunc(func(context.Context, herd.NearbyQuery) ([]byte, error) { return doc, nil })
	return herd.WhatsatBody(context.Background(), newProvClock(), p, time.Second, herd.NearbyQuery{MaxResults: bound})
}

// errorJSON is the WHATSAT body for a provider that failed with msg.
func errorJSON(msg string) []byte {
	p := herd.PlacesFunc(func(context.Context, herd.NearbyQuery) ([]byte, error) { return nil, errors.New(msg) })
	return herd.WhatsatBody(context.Background(), newProvClock(), p, time.Second, herd.NearbyQuery{MaxResults: 1})
}

// startNode starts a node named Goloman on a loopback port, answering
// WHATSAT from p, and closes it when the test ends.
func startNode(t *testing.T, p herd.PlacesClient) *herd.Node {
	t.Helper()
	n, err := herd.New(herd.Config{Name: "Goloman", Addr: "127.0.0.1:0", Places: p})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}
