package farm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The text encoding is the patent's: one line per server,
//
//	http://serverA.caplin.com UP 2963 A
//
// that is URL, status, users and priority group, separated by spaces. Optional
// key=value fields may follow: name= (when the name is not the URL's first
// host label), addrs= (comma-separated addresses), cap= (capacity) and
// reason= (why the node chose its status, e.g. reason=health:feed). A
// key=value field of another name is skipped, so that a field added later
// does not break a parser of today: a parser that reads the four fields
// the patent defines reads every line of this format.
// Blank lines and lines starting with '#' are ignored, except a header line
//
//	# farm service=stream.example.com generated=2026-11-29T14:00:00Z reporter=serverA
//
// which carries the list's own fields. The DNS TXT encoding uses the same
// lines, one per character-string.

const headerTag = "farm"

// FormatLine returns the text line for one server.
func FormatLine(s Server) string {
	var b strings.Builder
	b.Grow(64 + len(s.URL))
	b.WriteString(s.URL)
	b.WriteByte(' ')
	b.WriteString(s.Status.String())
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(s.Users))
	b.WriteByte(' ')
	b.WriteString(s.Priority.String())
	if s.Name != NameFromURL(s.URL) {
		b.WriteString(" name=")
		b.WriteString(s.Name)
	}
	if len(s.Addrs) > 0 {
		b.WriteString(" addrs=")
		for i, a := range s.Addrs {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(a.String())
		}
	}
	if s.Capacity > 0 {
		b.WriteString(" cap=")
		b.WriteString(strconv.Itoa(s.Capacity))
	}
	if s.Reason != "" {
		b.WriteString(" reason=")
		b.WriteString(s.Reason)
	}
	return b.String()
}

// FormatHeader returns the header line carrying the list's own fields, or ""
// when the list has none.
func FormatHeader(l *List) string {
	var parts []string
	if l.Service != "" {
		parts = append(parts, "service="+l.Service)
	}
	if !l.GeneratedAt.IsZero() {
		parts = append(parts, "generated="+l.GeneratedAt.UTC().Format(time.RFC3339Nano))
	}
	if l.Reporter != "" {
		parts = append(parts, "reporter="+l.Reporter)
	}
	if len(parts) == 0 {
		return ""
	}
	return "# " + headerTag + " " + strings.Join(parts, " ")
}

// MarshalText encodes the list in the patent's text form, header first.
func MarshalText(l *List) ([]byte, error) {
	lines, err := textLines(l)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, ln := range lines {
		b.WriteString(ln)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

func textLines(l *List) ([]string, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	lines := make([]string, 0, len(l.Servers)+1)
	if h := FormatHeader(l); h != "" {
		lines = append(lines, h)
	}
	for i, s := range l.Servers {
		ln := FormatLine(s)
		if len(ln) > MaxLineBytes {
			return nil, &FieldError{Server: i, Err: fmt.Errorf("line is %d bytes, at most %d", len(ln), MaxLineBytes)}
		}
		lines = append(lines, ln)
	}
	return lines, nil
}

// ParseText decodes the patent's text form. Errors are *FieldError values
// naming the line and field.
func ParseText(data []byte) (*List, error) {
	p := newLineParser()
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 512), 64*1024)
	n := 0
	for sc.Scan() {
		n++
		if err := p.line(n, sc.Text()); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &FieldError{Line: n + 1, Server: -1, Err: fmt.Errorf("line longer than 64 KiB")}
		}
		return nil, err
	}
	return p.finish()
}

type lineParser struct {
	list List
	seen map[string]int // lower-case name -> line
}

func newLineParser() *lineParser { return &lineParser{seen: map[string]int{}} }

func (p *lineParser) line(n int, ln string) error {
	ln = strings.TrimSpace(ln)
	if ln == "" {
		return nil
	}
	if ln[0] == '#' {
		return p.header(n, ln)
	}
	if len(ln) > MaxLineBytes {
		return &FieldError{Line: n, Server: -1, Err: fmt.Errorf("%d bytes, at most %d", len(ln), MaxLineBytes)}
	}
	if len(p.list.Servers) >= MaxServers {
		return &FieldError{Line: n, Server: -1, Err: fmt.Errorf("more than %d servers", MaxServers)}
	}
	s, err := ParseLine(ln)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Line = n
		}
		return err
	}
	key := strings.ToLower(s.Name)
	if prev, dup := p.seen[key]; dup {
		return &FieldError{Line: n, Server: -1, Field: "name", Err: fmt.Errorf("%q repeats line %d", s.Name, prev)}
	}
	p.seen[key] = n
	p.list.Servers = append(p.list.Servers, s)
	return nil
}

func (p *lineParser) header(n int, ln string) error {
	f := strings.Fields(strings.TrimPrefix(ln, "#"))
	if len(f) == 0 || f[0] != headerTag {
		return nil // a comment
	}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return &FieldError{Line: n, Server: -1, Field: kv, Err: fmt.Errorf("want key=value")}
		}
		switch k {
		case "service":
			if err := checkToken(v, 253); err != nil {
				return &FieldError{Line: n, Server: -1, Field: k, Err: err}
			}
			p.list.Service = v
		case "generated":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return &FieldError{Line: n, Server: -1, Field: k, Err: fmt.Errorf("%q is not an RFC 3339 time", v)}
			}
			p.list.GeneratedAt = t
		case "reporter":
			if err := checkToken(v, MaxNameLen); err != nil {
				return &FieldError{Line: n, Server: -1, Field: k, Err: err}
			}
			p.list.Reporter = v
		default:
			return &FieldError{Line: n, Server: -1, Field: k, Err: fmt.Errorf("unknown header field")}
		}
	}
	return nil
}

func (p *lineParser) finish() (*List, error) {
	l := p.list
	if l.Servers == nil {
		l.Servers = []Server{}
	}
	return &l, nil
}

// ParseLine parses one server line. Errors are *FieldError values naming the
// field (the line number is left 0 for the caller to fill in).
func ParseLine(ln string) (Server, error) {
	f := strings.Fields(ln)
	fail := func(field string, err error) (Server, error) {
		return Server{}, &FieldError{Server: -1, Field: field, Err: err}
	}
	if len(f) < 4 {
		names := []string{"url", "status", "users", "priority"}
		return fail(names[len(f)], fmt.Errorf("missing (want: URL STATUS USERS PRIORITY)"))
	}
	var s Server
	s.URL = f[0]
	if err := checkURL(s.URL); err != nil {
		return fail("url", err)
	}
	st, err := ParseStatus(f[1])
	if err != nil {
		return fail("status", err)
	}
	s.Status = st
	s.Users, err = parseCount(f[2])
	if err != nil {
		return fail("users", err)
	}
	s.Priority, err = ParsePriority(f[3])
	if err != nil {
		return fail("priority", err)
	}
	seen := map[string]bool{}
	for _, kv := range f[4:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fail(kv, fmt.Errorf("want key=value after the fourth field"))
		}
		if seen[k] {
			return fail(k, fmt.Errorf("given twice"))
		}
		seen[k] = true
		switch k {
		case "name":
			if v == "" {
				return fail(k, fmt.Errorf("empty"))
			}
			if err := checkToken(v, MaxNameLen); err != nil {
				return fail(k, err)
			}
			s.Name = v
		case "addrs":
			parts := strings.Split(v, ",")
			if len(parts) > MaxAddrs {
				return fail(k, fmt.Errorf("%d addresses, at most %d", len(parts), MaxAddrs))
			}
			for _, a := range parts {
				ip, err := netip.ParseAddr(a)
				if err != nil || ip.Zone() != "" {
					return fail(k, fmt.Errorf("%q is not an IP address", a))
				}
				s.Addrs = append(s.Addrs, ip)
			}
		case "cap":
			s.Capacity, err = parseCount(v)
			if err != nil {
				return fail(k, err)
			}
		case "reason":
			if v == "" {
				return fail(k, fmt.Errorf("empty"))
			}
			if err := checkToken(v, MaxReasonLen); err != nil {
				return fail(k, err)
			}
			s.Reason = v
		default:
			// A field of a later version: skipped, as JSON skips
			// unknown keys.
		}
	}
	if s.Name == "" {
		s.Name = NameFromURL(s.URL)
		if err := checkToken(s.Name, MaxNameLen); err != nil || s.Name == "" {
			return fail("url", fmt.Errorf("no usable server name in %q; add name=", s.URL))
		}
	}
	return s, nil
}

func parseCount(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("%q is not a count from 0 to %d", s, MaxUsers)
	}
	return int(n), nil
}
