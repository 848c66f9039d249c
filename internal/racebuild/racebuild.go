// Package racebuild tells a test whether it was built with the race
// detector, so that the binaries it builds and runs as processes are built
// the same way: under `go test -race` the race detector then watches the
// daemons too, not only the test process.
package racebuild

// Flags returns the go build flags that match the test binary: "-race" when
// it was built with the race detector, nothing otherwise.
func Flags() []string {
	if Enabled {
		return []string{"-race"}
	}
	return nil
}

// Report is the line the race detector writes to a process's standard
// error when it finds a data race; a test that runs a binary built with
// Flags fails when its output holds it.
const Report = "WARNING: DATA RACE"
