package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// TestMeshSection parses the mesh's section of the farm file, good and bad.
func TestMeshSection(t *testing.T) {
	def := DefaultMesh()
	with := func(change func(*Mesh)) Mesh {
		m := def
		change(&m)
		return m
	}
	cases := []struct {
		name string
		in   string
		want Mesh   // the section after defaults, when err is ""
		err  string // substring of the error; "" for none
		path string // KeyError.Path
		line int    // KeyError.Line
	}{
		{name: "absent: every default", in: "", want: def},
		{name: "empty", in: "mesh: {}\n", want: def},
		{name: "null", in: "mesh:\n", want: def},
		{name: "every key", in: "mesh:\n  heartbeat: 100ms\n  suspect_after: 2s\n  probe_timeout: 1s\n  vouch_timeout: 600ms\n  vouch_lifetime: 3s\n  probe_fanout: 5\n",
			want: Mesh{Heartbeat: 100 * ms, SuspectAfter: 2 * time.Second, ProbeTimeout: time.Second, VouchTimeout: 600 * ms, VouchLifetime: 3 * time.Second, ProbeFanout: 5}},
		{name: "suspect_after alone", in: "mesh: {suspect_after: 2s}\n", want: with(func(m *Mesh) { m.SuspectAfter = 2 * time.Second })},
		{name: "probe_timeout derives vouch timeout and lifetime", in: "mesh: {probe_timeout: 900ms}\n",
			want: with(func(m *Mesh) { m.ProbeTimeout, m.VouchTimeout, m.VouchLifetime = 900*ms, 600*ms, 1800*ms })},
		{name: "zero means default", in: "mesh: {heartbeat: 0s, probe_fanout: 0}\n", want: def},
		{name: "suspect_after exactly two heartbeats", in: "mesh: {heartbeat: 1s, suspect_after: 2s}\n",
			want: with(func(m *Mesh) { m.Heartbeat, m.SuspectAfter = time.Second, 2*time.Second })},
		{name: "vouch_lifetime exactly probe + vouch", in: "mesh: {vouch_lifetime: 450ms}\n", want: with(func(m *Mesh) { m.VouchLifetime = 450 * ms })},
		{name: "fanout 1", in: "mesh: {probe_fanout: 1}\n", want: with(func(m *Mesh) { m.ProbeFanout = 1 })},

		{name: "unknown key", in: "mesh:\n  suspect: 2s\n", err: "unknown key (known: heartbeat, suspect_after", path: "mesh.suspect", line: 9},
		{name: "repeated key", in: "mesh:\n  heartbeat: 1s\n  heartbeat: 2s\n", err: "key repeats", path: "mesh.heartbeat", line: 10},
		{name: "not a mapping", in: "mesh: 2s\n", err: "want a mapping", path: "mesh", line: 8},
		{name: "not a duration", in: "mesh: {suspect_after: 2}\n", err: `"2" is not a duration`, path: "mesh.suspect_after", line: 8},
		{name: "fanout not an integer", in: "mesh: {probe_fanout: many}\n", err: "not an integer", path: "mesh.probe_fanout", line: 8},
		{name: "negative heartbeat", in: "mesh: {heartbeat: -50ms}\n", err: "-50ms is negative", path: "mesh.heartbeat", line: 8},
		{name: "negative suspect_after", in: "mesh:\n  suspect_after: -1s\n", err: "negative", path: "mesh.suspect_after", line: 9},
		{name: "negative probe_timeout", in: "mesh: {probe_timeout: -1s}\n", err: "negative", path: "mesh.probe_timeout", line: 8},
		{name: "negative vouch_timeout", in: "mesh: {vouch_timeout: -1s}\n", err: "negative", path: "mesh.vouch_timeout", line: 8},
		{name: "negative vouch_lifetime", in: "mesh: {vouch_lifetime: -1s}\n", err: "negative", path: "mesh.vouch_lifetime", line: 8},
		{name: "negative fanout", in: "mesh: {probe_fanout: -1}\n", err: "out of range 0..", path: "mesh.probe_fanout", line: 8},
		{name: "huge fanout", in: "mesh: {probe_fanout: 100000}\n", err: "out of range 0..", path: "mesh.probe_fanout", line: 8},
		{name: "heartbeat too short", in: "mesh: {heartbeat: 1ms}\n", err: "out of range 10ms..2s", path: "mesh.heartbeat", line: 8},
		{name: "heartbeat past idle timeout", in: "mesh: {heartbeat: 5s, suspect_after: 20s}\n", err: "out of range 10ms..2s", path: "mesh.heartbeat", line: 8},
		{name: "suspect_after too long", in: "mesh: {suspect_after: 1h}\n", err: "out of range 1ms..1m0s", path: "mesh.suspect_after", line: 8},
		{name: "vouch_lifetime too long", in: "mesh: {vouch_lifetime: 2m}\n", err: "out of range", path: "mesh.vouch_lifetime", line: 8},
		{name: "sub-millisecond probe", in: "mesh: {probe_timeout: 500us}\n", err: "out of range", path: "mesh.probe_timeout", line: 8},
		{name: "suspect_after under two heartbeats", in: "mesh: {heartbeat: 200ms, suspect_after: 300ms}\n",
			err: "300ms is less than two heartbeats (heartbeat 200ms)", path: "mesh.suspect_after", line: 8},
		{name: "heartbeat over half the default suspect_after", in: "mesh:\n  heartbeat: 200ms\n",
			err: "200ms leaves less than two heartbeats in suspect_after (350ms, the default): set suspect_after to at least 400ms", path: "mesh.heartbeat", line: 9},
		{name: "vouch_timeout not under the default probe_timeout", in: "mesh: {vouch_timeout: 250ms}\n",
			err: "250ms is not less than probe_timeout (250ms, the default)", path: "mesh.vouch_timeout", line: 8},
		{name: "vouch_timeout over probe_timeout", in: "mesh: {probe_timeout: 1s, vouch_timeout: 2s, vouch_lifetime: 10s}\n",
			err: "2s is not less than probe_timeout (1s)", path: "mesh.vouch_timeout", line: 8},
		{name: "vouch_lifetime under probe + vouch", in: "mesh:\n  probe_timeout: 1s\n  vouch_lifetime: 1s\n",
			err: "1s is less than probe_timeout + vouch_timeout (1.666666666s)", path: "mesh.vouch_lifetime", line: 10},
		{name: "vouch_lifetime under the default probe + vouch", in: "mesh: {vouch_lifetime: 449ms}\n",
			err: "449ms is less than probe_timeout + vouch_timeout (450ms)", path: "mesh.vouch_lifetime", line: 8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse([]byte(minimal + "tls: {ca: ca.crt}\n" + c.in))
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if f.Mesh != c.want {
					t.Errorf("mesh %+v, want %+v", f.Mesh, c.want)
				}
				return
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("error %v (%T), want a *KeyError", err, err)
			}
			if ke.Path != c.path || ke.Line != c.line || !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %q: path %q line %d, want path %q line %d and %q", err, ke.Path, ke.Line, c.path, c.line, c.err)
			}
		})
	}
}

// TestValidationErrorLines: an error found after decoding (a relation, a
// duplicate) still names the line of the value to change.
func TestValidationErrorLines(t *testing.T) {
	in := minimal + "  - name: b\n    url: http://127.0.0.2:80\n    peer: 127.0.0.1:7000\n"
	_, err := Parse([]byte(in))
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Path != "nodes[1].peer" || ke.Line != 9 {
		t.Fatalf("error %v, want nodes[1].peer at line 9", err)
	}
	if !strings.HasSuffix(err.Error(), "(line 9)") {
		t.Errorf("error %q does not end with its line", err)
	}
}
