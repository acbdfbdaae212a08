//go:build !linux

package e2e_test

import "testing"

// TestRealNetwork needs Linux network namespaces (netns_test.go).
func TestRealNetwork(t *testing.T) {
	t.Skip("real-network test skipped: it needs Linux network namespaces")
}
