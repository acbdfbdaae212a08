// Package configerr formats the configuration errors of package herd and
// package places, which report every problem at once with go-multierror.
package configerr

import (
	"strings"

	"github.com/hashicorp/go-multierror"
)

// Format returns the go-multierror ErrorFormat for errors that each read
// prefix + ": " + "Field: problem": one line that names prefix once, then
// each field's problem, "herd: invalid config: Name: must not be empty;
// Addr: ...". go-multierror's own format would write "2 errors
// occurred:" and repeat the prefix on every line.
func Format(prefix string) multierror.ErrorFormatFunc {
	prefix += ": "
	return func(es []error) string {
		parts := make([]string, len(es))
		for i, e := range es {
			parts[i] = strings.TrimPrefix(e.Error(), prefix)
		}
		return prefix + strings.Join(parts, "; ")
	}
}
