// Package realtime reads the system clock for herd's default Clock. It lives
// outside package herd so that package herd itself never calls time.Now
// (the determinism rules in herd's package doc).
package realtime

import "time"

// Now returns time.Now().
func Now() time.Time { return time.Now() }

// AfterFunc is time.AfterFunc.
func AfterFunc(d time.Duration, f func()) *time.Timer { return time.AfterFunc(d, f) }
