package farm

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// MarshalTXT encodes the list as DNS TXT character-strings: the header line
// first (when the list has service, time or reporter), then one string per
// server in the patent's text form. Every string is under 255 bytes.
func MarshalTXT(l *List) ([]string, error) {
	return textLines(l)
}

// ParseTXT decodes the character-strings of a _farm TXT record. Errors name
// the string (as "line") and the field.
func ParseTXT(strs []string) (*List, error) {
	p := newLineParser()
	for i, s := range strs {
		if len(s) > 255 {
			return nil, &FieldError{Line: i + 1, Server: -1, Err: fmt.Errorf("character-string is %d bytes, at most 255", len(s))}
		}
		if strings.ContainsAny(s, "\r\n") {
			return nil, &FieldError{Line: i + 1, Server: -1, Err: fmt.Errorf("character-string holds a line break")}
		}
		if err := p.line(i+1, s); err != nil {
			return nil, err
		}
	}
	return p.finish()
}

// ParseTXTPresentation decodes TXT records in presentation format, as dig
// prints them or a zone file holds them:
//
//	_farm.stream.example.com. 5 IN TXT "http://serverA.caplin.com UP 2963 A" "..."
//
// Every quoted character-string in the input is taken in order; lines that
// start with ';' are comments.
func ParseTXTPresentation(data []byte) (*List, error) {
	var strs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		ln := strings.TrimSpace(sc.Text())
		if ln == "" || ln[0] == ';' {
			continue
		}
		got, err := quotedStrings(ln)
		if err != nil {
			return nil, &FieldError{Line: n, Server: -1, Err: err}
		}
		strs = append(strs, got...)
		if len(strs) > MaxServers+1 {
			return nil, &FieldError{Line: n, Server: -1, Err: fmt.Errorf("more than %d servers", MaxServers)}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	return ParseTXT(strs)
}

// quotedStrings returns the quoted character-strings in one presentation
// line, undoing \" \\ and \DDD escapes.
func quotedStrings(ln string) ([]string, error) {
	var out []string
	for i := 0; i < len(ln); i++ {
		if ln[i] != '"' {
			continue
		}
		var b strings.Builder
		i++
		closed := false
		for ; i < len(ln); i++ {
			c := ln[i]
			if c == '"' {
				closed = true
				break
			}
			if c != '\\' {
				b.WriteByte(c)
				continue
			}
			if i+1 >= len(ln) {
				return nil, fmt.Errorf("escape at end of line")
			}
			if d := ln[i+1:]; len(d) >= 3 && isDigit(d[0]) && isDigit(d[1]) && isDigit(d[2]) {
				v := int(d[0]-'0')*100 + int(d[1]-'0')*10 + int(d[2]-'0')
				if v > 255 {
					return nil, fmt.Errorf("escape \\%s out of range", d[:3])
				}
				b.WriteByte(byte(v))
				i += 3
				continue
			}
			b.WriteByte(ln[i+1])
			i++
		}
		if !closed {
			return nil, fmt.Errorf("unterminated quoted string")
		}
		out = append(out, b.String())
	}
	return out, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Format names one of the list's encodings.
type Format int

// The encodings of a farm list.
const (
	FormatText Format = iota // the patent's lines
	FormatJSON               // GET /farm
	FormatTXT                // DNS TXT records in presentation format
)

func (f Format) String() string {
	switch f {
	case FormatText:
		return "text"
	case FormatJSON:
		return "json"
	case FormatTXT:
		return "txt"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// DetectFormat tells the encoding of a list file: JSON starts with '{', TXT
// presentation has quoted strings (which text lines cannot hold), the rest is
// text.
func DetectFormat(data []byte) Format {
	t := bytes.TrimSpace(data)
	if len(t) > 0 && t[0] == '{' {
		return FormatJSON
	}
	for _, ln := range bytes.Split(t, []byte("\n")) {
		ln = bytes.TrimSpace(ln)
		if len(ln) > 0 && ln[0] != ';' && ln[0] != '#' && bytes.IndexByte(ln, '"') >= 0 {
			return FormatTXT
		}
	}
	return FormatText
}

// Decode parses a list in whichever encoding DetectFormat finds.
func Decode(data []byte) (*List, Format, error) {
	f := DetectFormat(data)
	var l *List
	var err error
	switch f {
	case FormatJSON:
		l, err = ParseJSON(data)
	case FormatTXT:
		l, err = ParseTXTPresentation(data)
	default:
		l, err = ParseText(data)
	}
	return l, f, err
}
