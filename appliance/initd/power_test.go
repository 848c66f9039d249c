package initd

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func event(typ, code uint16, value int32) []byte {
	b := make([]byte, inputEvent)
	binary.NativeEndian.PutUint64(b[0:], 1700000000) // tv_sec
	binary.NativeEndian.PutUint16(b[16:], typ)
	binary.NativeEndian.PutUint16(b[18:], code)
	binary.NativeEndian.PutUint32(b[20:], uint32(value))
	return b
}

func TestIsPowerPress(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   []byte
		want bool
	}{
		{"press", event(evKey, keyPower, 1), true},
		{"release", event(evKey, keyPower, 0), false},
		{"autorepeat", event(evKey, keyPower, 2), false},
		{"other key", event(evKey, 115, 1), false},
		{"sync", event(0, 0, 0), false},
		{"short", event(evKey, keyPower, 1)[:20], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsPowerPress(tc.ev); got != tc.want {
				t.Errorf("IsPowerPress = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPowerButtons(t *testing.T) {
	root := t.TempDir()
	for ev, name := range map[string]string{"event0": "Power Button\n", "event1": "AT Translated Set 2 keyboard\n", "event2": "Power Button\n"} {
		dir := filepath.Join(root, "sys/class/input", ev, "device")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "name"), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := PowerButtons(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "dev/input/event0"), filepath.Join(root, "dev/input/event2")}
	if !slices.Equal(got, want) {
		t.Errorf("PowerButtons = %v, want %v", got, want)
	}
}

// TestWatchPowerButtons feeds events through a FIFO, which like an event
// device is pollable, so the watcher's Close ends its read.
func TestWatchPowerButtons(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "event0")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Skip(err)
	}
	pressed := make(chan struct{}, 4)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- WatchPowerButtons(ctx, []string{fifo}, func() { pressed <- struct{}{} }) }()
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var burst []byte
	for _, ev := range [][]byte{event(evKey, 115, 1), event(evKey, keyPower, 1), event(0, 0, 0), event(evKey, keyPower, 0), event(evKey, keyPower, 1)} {
		burst = append(burst, ev...)
	}
	if _, err := w.Write(burst); err != nil {
		t.Fatal(err)
	}
	<-pressed
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(pressed) != 0 {
		t.Error("pressed was called more than once")
	}
}

// FuzzIsPowerPress: any bytes, no panic; a press is only ever a whole
// event, and readPresses counts exactly the presses among the whole events.
func FuzzIsPowerPress(f *testing.F) {
	f.Add(event(evKey, keyPower, 1))
	f.Add(event(evKey, keyPower, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		if IsPowerPress(b) && len(b) < inputEvent {
			t.Fatal("a short event counted as a press")
		}
		// readPresses sees every whole event at a multiple of the event
		// size (the kernel returns whole events) and drops a partial tail.
		want := 0
		for i := 0; i+inputEvent <= len(b); i += inputEvent {
			if IsPowerPress(b[i : i+inputEvent]) {
				want++
			}
		}
		var n int
		readPresses(bytes.NewReader(b), func() { n++ })
		if n != want {
			t.Fatalf("readPresses counted %d presses in %d bytes, want %d", n, len(b), want)
		}
	})
}
