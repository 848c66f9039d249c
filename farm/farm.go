// Package farm is the vocabulary every part of farmlb shares: a server, its
// status and priority group, the farm list, the list's three encodings (the
// patent's text lines, JSON, DNS TXT character-strings) and the selection
// policies a client uses to pick a server from a list.
//
// The package imports nothing outside the standard library, so that any
// client program can embed it.
package farm

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Status says whether a server takes new clients.
type Status uint8

// The zero Status is DOWN: a server whose status is unknown is never picked.
const (
	StatusDown     Status = iota // unreachable or stopped
	StatusUp                     // serving and taking new clients
	StatusDraining               // serving its clients, taking no new ones
)

var statusNames = [...]string{StatusDown: "DOWN", StatusUp: "UP", StatusDraining: "DRAINING"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// ParseStatus parses UP, DOWN or DRAINING (case-insensitive).
func ParseStatus(s string) (Status, error) {
	for i, n := range statusNames {
		if strings.EqualFold(s, n) {
			return Status(i), nil
		}
	}
	return 0, fmt.Errorf("unknown status %q (want UP, DOWN or DRAINING)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (s Status) MarshalText() ([]byte, error) {
	if int(s) >= len(statusNames) {
		return nil, fmt.Errorf("invalid status %d", uint8(s))
	}
	return []byte(statusNames[s]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Status) UnmarshalText(b []byte) error {
	v, err := ParseStatus(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Priority is a server's priority group: A (0) is the highest, then B, and so
// on to Z (25). Clients use a lower group only when no higher group has an UP
// server.
type Priority uint8

// Priority bounds.
const (
	PriorityHighest Priority = 0  // A
	PriorityLowest  Priority = 25 // Z
	NumPriorities            = int(PriorityLowest) + 1
)

func (p Priority) String() string {
	if p > PriorityLowest {
		return fmt.Sprintf("Priority(%d)", uint8(p))
	}
	return string(rune('A' + p))
}

// ParsePriority parses a group letter, A to Z (case-insensitive).
func ParsePriority(s string) (Priority, error) {
	if len(s) == 1 {
		c := s[0] | 0x20 // lower case
		if c >= 'a' && c <= 'z' {
			return Priority(c - 'a'), nil
		}
	}
	return 0, fmt.Errorf("invalid priority group %q (want a letter A to Z)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (p Priority) MarshalText() ([]byte, error) {
	if p > PriorityLowest {
		return nil, fmt.Errorf("invalid priority %d", uint8(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Server is one node of the farm as a client sees it.
type Server struct {
	// Name is the node's name, unique in the farm (e.g. "serverA"). In DNS it
	// is the first label of the server's own name in the zone.
	Name string `json:"name"`
	// URL is where clients reach the node, e.g. "https://serverA.example.com".
	URL string `json:"url"`
	// Addrs are the node's public addresses (for A/AAAA records); may be empty.
	Addrs []netip.Addr `json:"addrs,omitempty"`
	// Status is UP, DOWN or DRAINING.
	Status Status `json:"status"`
	// Users is the number of clients connected right now.
	Users int `json:"users"`
	// Priority is the server's priority group, A highest.
	Priority Priority `json:"priority"`
	// Capacity is the most streams the node takes; 0 means no limit.
	Capacity int `json:"capacity,omitempty"`
	// Reason says why the status is what it is, when the node itself
	// chose it: "drain" (an operator's drain), "health:NAME" (its check
	// NAME fails), "overload:SIGNAL" (it is full: fanout, cpu or streams).
	// Empty when there is nothing to say, which includes a node the mesh
	// declared DOWN because nobody hears it. A DOWN server with a reason
	// is alive (it serves the farm and takes data from its peers) but
	// sends its clients elsewhere. A token of at most MaxReasonLen bytes
	// (see checkToken); old parsers of the text and TXT forms skip it.
	Reason string `json:"reason,omitempty"`
}

// Full reports whether the server has reached its capacity.
func (s Server) Full() bool { return s.Capacity > 0 && s.Users >= s.Capacity }

// Eligible reports whether a client may pick the server: UP and not full.
func (s Server) Eligible() bool { return s.Status == StatusUp && !s.Full() }

// List is the farm list: every server of one service, as one member saw it.
type List struct {
	// Service is the service name, e.g. "stream.example.com".
	Service string `json:"service,omitempty"`
	// GeneratedAt is when the reporting member produced the list.
	GeneratedAt time.Time `json:"generated_at,omitzero"`
	// Reporter is the name of the member that produced the list.
	Reporter string `json:"reporter,omitempty"`
	// Servers are the farm's servers, in the order the reporter keeps them.
	Servers []Server `json:"servers"`
}

// Clone returns a deep copy of l, safe to reorder or change.
func (l *List) Clone() *List {
	if l == nil {
		return nil
	}
	c := *l
	c.Servers = make([]Server, len(l.Servers))
	for i, s := range l.Servers {
		s.Addrs = append([]netip.Addr(nil), s.Addrs...)
		c.Servers[i] = s
	}
	return &c
}

// Find returns the server with the given name.
func (l *List) Find(name string) (Server, bool) {
	for _, s := range l.Servers {
		if s.Name == name {
			return s, true
		}
	}
	return Server{}, false
}

// Limits on what a list may hold; the decoders enforce them so that no input
// can make a list grow without bound.
const (
	MaxServers   = 4096 // servers in one list
	MaxNameLen   = 63   // a DNS label
	MaxURLLen    = 160  // keeps a TXT string well under 255 bytes
	MaxAddrs     = 4    // addresses per server
	MaxUsers     = 1<<31 - 1
	MaxLineBytes = 254 // a DNS TXT character-string is at most 255 bytes
	MaxReasonLen = 64  // a Reason: "health:" and a check name of up to 48 bytes fit
)

// FieldError is a decoding or validation error that names where the input
// was wrong: the line (1-based; 0 when the encoding has no lines), the
// server, and the field.
type FieldError struct {
	Line   int    // 1-based line or TXT string number; 0 if not applicable
	Server int    // 0-based server index; -1 if not applicable
	Field  string // e.g. "status", "users"
	Err    error
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	} else if e.Server >= 0 {
		fmt.Fprintf(&b, "server %d: ", e.Server)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "%s: ", e.Field)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks a server's fields against the limits every encoding shares.
func (s *Server) Validate() (field string, err error) {
	if s.Name == "" {
		return "name", fmt.Errorf("empty")
	}
	if err := checkToken(s.Name, MaxNameLen); err != nil {
		return "name", err
	}
	if err := checkURL(s.URL); err != nil {
		return "url", err
	}
	if len(s.Addrs) > MaxAddrs {
		return "addrs", fmt.Errorf("%d addresses, at most %d", len(s.Addrs), MaxAddrs)
	}
	for _, a := range s.Addrs {
		if !a.IsValid() {
			return "addrs", fmt.Errorf("invalid address")
		}
	}
	if s.Status > StatusDraining {
		return "status", fmt.Errorf("invalid status %d", s.Status)
	}
	if s.Users < 0 || s.Users > MaxUsers {
		return "users", fmt.Errorf("%d out of range 0..%d", s.Users, MaxUsers)
	}
	if s.Priority > PriorityLowest {
		return "priority", fmt.Errorf("invalid priority %d", s.Priority)
	}
	if s.Capacity < 0 || s.Capacity > MaxUsers {
		return "capacity", fmt.Errorf("%d out of range 0..%d", s.Capacity, MaxUsers)
	}
	if s.Reason != "" {
		if err := checkToken(s.Reason, MaxReasonLen); err != nil {
			return "reason", err
		}
	}
	return "", nil
}

// Validate checks every server and that names are unique.
func (l *List) Validate() error {
	if len(l.Servers) > MaxServers {
		return &FieldError{Server: -1, Field: "servers", Err: fmt.Errorf("%d servers, at most %d", len(l.Servers), MaxServers)}
	}
	if l.Service != "" {
		if err := checkToken(l.Service, 253); err != nil {
			return &FieldError{Server: -1, Field: "service", Err: err}
		}
	}
	if err := checkToken(l.Reporter, MaxNameLen); l.Reporter != "" && err != nil {
		return &FieldError{Server: -1, Field: "reporter", Err: err}
	}
	seen := make(map[string]int, len(l.Servers))
	for i := range l.Servers {
		s := &l.Servers[i]
		if f, err := s.Validate(); err != nil {
			return &FieldError{Server: i, Field: f, Err: err}
		}
		if j, dup := seen[strings.ToLower(s.Name)]; dup {
			return &FieldError{Server: i, Field: "name", Err: fmt.Errorf("%q repeats server %d", s.Name, j)}
		}
		seen[strings.ToLower(s.Name)] = i
	}
	return nil
}

// checkToken accepts printable ASCII without spaces, quotes, '=' or '#', so a
// value can stand in a text line or a TXT string without quoting.
func checkToken(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes, at most %d", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == '=' || c == '#' || c == ',' {
			return fmt.Errorf("%q: character %q not allowed", s, c)
		}
	}
	return nil
}

func checkURL(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	if len(s) > MaxURLLen {
		return fmt.Errorf("%d bytes, at most %d", len(s), MaxURLLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return fmt.Errorf("%q: character %q not allowed", s, c)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", s)
	}
	return nil
}

// NameFromURL derives a server name from its URL when a text line gives none:
// the first label of the URL's host ("http://serverA.caplin.com" gives
// "serverA"), or the whole host when it is an IP address.
func NameFromURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	h := u.Hostname()
	if _, err := netip.ParseAddr(h); err == nil {
		return h
	}
	if i := strings.IndexByte(h, '.'); i > 0 {
		return h[:i]
	}
	return h
}
