// Package calc is a tiny library whose tests pass, fail, skip and use subtests, so that
// loopdash's tests ingest real `go test -json` output.
package calc

// Add returns the sum of a and b.
func Add(a, b int) int { return a + b }

// Div divides a by b; it panics when b is 0.
func Div(a, b int) int { return a / b }
