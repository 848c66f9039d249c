package farm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// MarshalJSON encodes the list as JSON with plain field names (name, url,
// addrs, status, users, priority, capacity; service, generated_at, reporter).
func MarshalJSON(l *List) ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(l, "", "  ")
}

// ParseJSON decodes a list from JSON. Unknown fields are ignored, so that a
// client keeps working against a newer server; values are validated and
// errors name the server and field.
func ParseJSON(data []byte) (*List, error) {
	var l List
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&l); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, &FieldError{Server: -1, Field: te.Field, Err: fmt.Errorf("%s is not a valid %s", te.Value, te.Type)}
		}
		return nil, fmt.Errorf("json: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("json: unexpected data after the list")
	}
	if l.Servers == nil {
		l.Servers = []Server{}
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return &l, nil
}
