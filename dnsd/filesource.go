package dnsd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/farmlb/farmlb/farm"
)

// maxListFile bounds what a list file may hold: a farm of farm.MaxServers
// servers in JSON stays well under it.
const maxListFile = 16 << 20

// FileConfig configures a FileSource. Zero fields take their defaults.
type FileConfig struct {
	// Poll is how often the file is checked for a change (its size,
	// modification time or inode). If zero, defaults to 1s: a changed list is
	// answered within a second, and a stat a second costs nothing.
	Poll time.Duration
	// Logger receives a line per reload and per bad file. If nil, logs are
	// discarded.
	Logger *slog.Logger
	// Registerer receives farmlb_dnsd_list_reloads_total. If nil, the metric
	// is not registered.
	Registerer prometheus.Registerer
}

// FileSource is a farm.Source that reads a list file in any of the farm
// encodings (farm.Decode: the patent's text lines, the JSON of GET /farm, TXT
// presentation) and reloads it when it changes. A file that cannot be read or
// parsed keeps the last good table and is logged with the reason.
type FileSource struct {
	path    string
	cfg     FileConfig
	reloads *prometheus.CounterVec

	table atomic.Pointer[farm.List]

	reloadMu sync.Mutex // one reload at a time (the poller and SIGHUP)

	mu      sync.Mutex // guards the fields below
	subs    map[chan struct{}]struct{}
	seen    os.FileInfo // the file as last looked at
	content []byte      // the last good content
	lastErr string
}

// OpenFile reads the list file at path. It fails when the file cannot be read
// or parsed: a server must not start with no table.
func OpenFile(path string, cfg FileConfig) (*FileSource, error) {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &FileSource{
		path: path,
		cfg:  cfg,
		subs: map[chan struct{}]struct{}{},
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "farmlb_dnsd_list_reloads_total",
			Help: "Reloads of the list file, by result (ok, error); an error keeps the last good table.",
		}, []string{"result"}),
	}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(f.reloads); err != nil {
			return nil, fmt.Errorf("dnsd: register list metrics: %w", err)
		}
	}
	return f, nil
}

// Table implements farm.Source.
func (f *FileSource) Table() *farm.List { return f.table.Load() }

// Subscribe implements farm.Source.
func (f *FileSource) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, ch)
			f.mu.Unlock()
		})
	}
}

// Path returns the file's path.
func (f *FileSource) Path() string { return f.path }

// Run checks the file every Poll until ctx ends, reloading it when it
// changed. It returns nil when ctx ends.
func (f *FileSource) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = f.check() // logged
		}
	}
}

// recentWrite is how long after its last modification a file's content is
// compared as well as its size, time and inode: longer than any file
// system's timestamp granularity (2 s on FAT).
const recentWrite = 3 * time.Second

// check reloads the file if its size, time or inode changed since last seen.
func (f *FileSource) check() error {
	fi, err := os.Stat(f.path)
	if err != nil {
		return f.fail(err)
	}
	f.mu.Lock()
	prev := f.seen
	f.mu.Unlock()
	if prev != nil && os.SameFile(prev, fi) && fi.ModTime().Equal(prev.ModTime()) && fi.Size() == prev.Size() {
		// A rewrite of the same size within the file system's timestamp
		// granularity leaves all three alone: while the file is that
		// young, compare its content too.
		if time.Since(fi.ModTime()) > recentWrite {
			return nil
		}
		_, data, err := readList(f.path)
		if err != nil {
			return f.fail(err)
		}
		f.mu.Lock()
		same := bytes.Equal(data, f.content)
		f.mu.Unlock()
		if same {
			return nil
		}
	}
	return f.Reload()
}

// Reload reads the file now (dnsd calls it on SIGHUP). A file that cannot be
// read or parsed keeps the last good table; the error says why.
func (f *FileSource) Reload() error {
	f.reloadMu.Lock()
	defer f.reloadMu.Unlock()
	fi, data, err := readList(f.path)
	if err != nil {
		return f.fail(err)
	}
	l, format, err := farm.Decode(data)
	if err == nil {
		err = l.Validate()
	}
	f.mu.Lock()
	f.seen = fi
	f.mu.Unlock()
	if err != nil {
		return f.fail(fmt.Errorf("%s (read as %s): %w", f.path, format, err))
	}
	f.mu.Lock()
	same := f.content != nil && bytes.Equal(data, f.content)
	f.content = data
	recovered := f.lastErr != ""
	f.lastErr = ""
	f.mu.Unlock()
	f.reloads.WithLabelValues("ok").Inc()
	if same {
		if recovered {
			f.cfg.Logger.Info("list file is good again, unchanged", "path", f.path)
		}
		return nil
	}
	f.table.Store(l)
	f.cfg.Logger.Info("list loaded", "path", f.path, "format", format.String(), "servers", len(l.Servers))
	f.notify()
	return nil
}

func readList(path string) (os.FileInfo, []byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(file, maxListFile+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxListFile {
		return nil, nil, fmt.Errorf("%s: larger than %d bytes", path, maxListFile)
	}
	return fi, data, nil
}

// fail records a failed reload: logged once per distinct reason.
func (f *FileSource) fail(err error) error {
	f.reloads.WithLabelValues("error").Inc()
	f.mu.Lock()
	repeat := f.lastErr == err.Error()
	f.lastErr = err.Error()
	f.mu.Unlock()
	if !repeat {
		f.cfg.Logger.Error("list file not taken: answering from the last good table", "path", f.path, "err", err)
	}
	if f.table.Load() == nil {
		return fmt.Errorf("dnsd: list file: %w", err)
	}
	return &StaleError{Err: err}
}

// StaleError is returned by FileSource.Reload when the file is bad and the
// last good table stays in use.
type StaleError struct{ Err error }

func (e *StaleError) Error() string {
	return "list file not taken, the last good table stays: " + e.Err.Error()
}

func (e *StaleError) Unwrap() error { return e.Err }

func (f *FileSource) notify() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default: // coalesced: a change is already pending
		}
	}
}
