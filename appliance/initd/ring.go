// Package initd is the appliance's /init: it mounts the kernel's file
// systems, reads appliance.yaml from the boot partition, brings up the
// network, supervises pushd and dnsd, reaps orphans, keeps the console log
// in a ring the operator can read, and powers off on the ACPI power button.
package initd

import (
	"bytes"
	"sync"
)

// Ring keeps the last Size bytes written to it, cut at line boundaries.
// It is safe for concurrent use; each Write lands whole, so lines written
// by one call never interleave with another's.
type Ring struct {
	mu   sync.Mutex
	buf  []byte
	next int  // where the next byte goes
	full bool // buf has wrapped at least once
}

// NewRing returns a ring that keeps size bytes (at least 1).
func NewRing(size int) *Ring {
	return &Ring{buf: make([]byte, max(size, 1))}
}

// Write keeps p (or, if p is larger than the ring, its tail). It never
// fails.
func (r *Ring) Write(p []byte) (int, error) {
	n := len(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(p) >= len(r.buf) {
		copy(r.buf, p[len(p)-len(r.buf):])
		r.next, r.full = 0, true
		return n, nil
	}
	c := copy(r.buf[r.next:], p)
	if c < len(p) {
		copy(r.buf, p[c:])
		r.full = true
	}
	r.next = (r.next + len(p)) % len(r.buf)
	if r.next == 0 && len(p) > 0 {
		r.full = true
	}
	return n, nil
}

// Bytes returns a copy of what the ring holds, oldest first. Once the ring
// has wrapped, the partial line at its start is dropped, so every line
// returned is whole.
func (r *Ring) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return bytes.Clone(r.buf[:r.next])
	}
	out := make([]byte, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	out = append(out, r.buf[:r.next]...)
	if i := bytes.IndexByte(out, '\n'); i >= 0 {
		return out[i+1:]
	}
	return out
}
