package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// KeyError is an error in the farm file that names where it is: the key
// path (e.g. "nodes[1].priority") and, when known, the line.
type KeyError struct {
	Path string // key path from the top of the file; "" for the whole file
	Line int    // 1-based line of the offending value; 0 if unknown
	Err  error
}

func (e *KeyError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

func (e *KeyError) Unwrap() error { return e.Err }

// keyErr builds a *KeyError for path.
func keyErr(path string, line int, format string, args ...any) error {
	return &KeyError{Path: path, Line: line, Err: fmt.Errorf(format, args...)}
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// decode fills v from n strictly: every mapping key must name a field (by its
// yaml tag), keys may not repeat, sequences go only into slices, and every
// error names the key path. It does the work of yaml's KnownFields(true)
// decoder, but with errors that say which key rather than which Go type.
// Anchors and aliases are refused: a farm file has no use for them, and
// following them is how small YAML documents expand into huge ones.
func decode(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return keyErr(path, n.Line, "anchors and aliases are not supported")
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an absent value: keep the zero value (the default)
	}
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return decode(n, v.Elem(), path)
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode {
			return keyErr(path, n.Line, "want a single value, not a %s", kindName(n))
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			return &KeyError{Path: path, Line: n.Line, Err: err}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return keyErr(path, n.Line, "want a list, not a %s", kindName(n))
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			if err := decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return keyErr(path, n.Line, "unsupported map key type %s", t.Key())
		}
		if n.Kind != yaml.MappingNode {
			return keyErr(path, n.Line, "want a mapping of keys to values, not a %s", kindName(n))
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return keyErr(path, k.Line, "keys must be plain strings")
			}
			kp := joinPath(path, k.Value)
			if m.MapIndex(reflect.ValueOf(k.Value).Convert(t.Key())).IsValid() {
				return keyErr(kp, k.Line, "key repeats")
			}
			e := reflect.New(t.Elem()).Elem()
			if err := decode(val, e, kp); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), e)
		}
		v.Set(m)
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return keyErr(path, n.Line, "want a single value, not a %s", kindName(n))
	}
	s := n.Value
	switch {
	case t == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return keyErr(path, n.Line, "%q is not a duration (e.g. 250ms, 5s, 1m)", s)
		}
		v.SetInt(int64(d))
	case t.Kind() == reflect.String:
		v.SetString(s)
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return keyErr(path, n.Line, "%q is not true or false", s)
		}
		v.SetBool(b)
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, t.Bits())
		if err != nil {
			return keyErr(path, n.Line, "%q is not an integer that fits %d bits", s, t.Bits())
		}
		v.SetInt(i)
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		u, err := strconv.ParseUint(strings.ReplaceAll(s, "_", ""), 10, t.Bits())
		if err != nil {
			return keyErr(path, n.Line, "%q is not a non-negative integer that fits %d bits", s, t.Bits())
		}
		v.SetUint(u)
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(s, t.Bits())
		if err != nil {
			return keyErr(path, n.Line, "%q is not a number", s)
		}
		v.SetFloat(f)
	default:
		// A field of a type this decoder does not know is a programming
		// error in the config package, not in the file.
		return keyErr(path, n.Line, "internal: unsupported field type %s", t)
	}
	return nil
}

func decodeStruct(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind != yaml.MappingNode {
		return keyErr(path, n.Line, "want a mapping of keys to values, not a %s", kindName(n))
	}
	t := v.Type()
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return keyErr(path, k.Line, "keys must be plain strings")
		}
		kp := joinPath(path, k.Value)
		if seen[k.Value] {
			return keyErr(kp, k.Line, "key repeats")
		}
		seen[k.Value] = true
		f, ok := fieldByTag(t, k.Value)
		if !ok {
			return keyErr(kp, k.Line, "unknown key (known: %s)", strings.Join(knownKeys(t), ", "))
		}
		if err := decode(val, v.FieldByIndex(f.Index), kp); err != nil {
			return err
		}
	}
	return nil
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key && name != "-" && f.IsExported() {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func knownKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.ScalarNode:
		return fmt.Sprintf("single value %q", n.Value)
	}
	return "document"
}
