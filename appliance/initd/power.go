package initd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// The ACPI power button. Without acpid or systemd-logind the kernel only
// reports a press as an input event: its ACPI button driver registers an
// input device named "Power Button" (one for the fixed-hardware button,
// LNXPWRBN, and one for PNP0C0C), and a press is EV_KEY/KEY_POWER on
// /dev/input/eventN. (gokrazy leaves the button to the kernel's default,
// which does nothing; a hypervisor's "shut down" then falls back to a hard
// power-off.) The init watches those devices itself.

const (
	evKey      = 0x01 // EV_KEY
	keyPower   = 116  // KEY_POWER
	inputEvent = 24   // sizeof(struct input_event) on 64-bit: timeval 16, type 2, code 2, value 4
)

// IsPowerPress reports whether one struct input_event (native byte order,
// 64-bit) is a press of KEY_POWER. Short input is not a press.
func IsPowerPress(ev []byte) bool {
	if len(ev) < inputEvent {
		return false
	}
	typ := binary.NativeEndian.Uint16(ev[16:])
	code := binary.NativeEndian.Uint16(ev[18:])
	value := int32(binary.NativeEndian.Uint32(ev[20:]))
	return typ == evKey && code == keyPower && value == 1
}

// PowerButtons returns the event devices whose name says they are a power
// button, looking in sysfs (root is "/" in the appliance).
func PowerButtons(root string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(root, "sys/class/input/event*/device/name"))
	if err != nil {
		return nil, err
	}
	var devs []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		if strings.EqualFold(strings.TrimSpace(string(b)), "Power Button") {
			ev := filepath.Base(filepath.Dir(filepath.Dir(n)))
			devs = append(devs, filepath.Join(root, "dev/input", ev))
		}
	}
	return devs, nil
}

// WatchPowerButtons reads every device in devs and calls pressed once on
// the first power-button press. It returns when ctx ends, after closing
// the devices and waiting for its readers.
func WatchPowerButtons(ctx context.Context, devs []string, pressed func()) error {
	var files []*os.File
	for _, d := range devs {
		f, err := os.Open(d)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return fmt.Errorf("power button: %w", err)
		}
		files = append(files, f)
	}
	var once sync.Once
	var wg sync.WaitGroup
	for _, f := range files {
		wg.Go(func() {
			readPresses(f, func() { once.Do(pressed) })
		})
	}
	<-ctx.Done()
	// Event devices are pollable, so Close ends a blocked Read.
	for _, f := range files {
		f.Close()
	}
	wg.Wait()
	return nil
}

// readPresses reads input events from r until it fails, calling pressed
// for each power-button press.
func readPresses(r io.Reader, pressed func()) {
	buf := make([]byte, inputEvent*16)
	for {
		n, err := io.ReadAtLeast(r, buf, inputEvent)
		// The kernel returns whole events; n is a multiple of the size.
		for i := 0; i+inputEvent <= n; i += inputEvent {
			if IsPowerPress(buf[i : i+inputEvent]) {
				pressed()
			}
		}
		if err != nil && !errors.Is(err, io.ErrShortBuffer) {
			return
		}
	}
}
