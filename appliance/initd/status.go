package initd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// StatusConfig configures the init's HTTP endpoint.
type StatusConfig struct {
	// Addr is the listen address. If empty, defaults to ":9100".
	Addr string
	// Hostname is reported by GET /status.
	Hostname string
	// Ring is served by GET /logs. Required.
	Ring *Ring
	// Supervisor's services are reported by GET /status; nil reports none.
	Supervisor *Supervisor
	// Reaper's orphan count is reported by GET /status; optional.
	Reaper *Reaper
	// Errors are boot problems (config, network) reported by GET /status.
	Errors func() []string
}

// Status is the init's HTTP endpoint:
//
//	GET /status  JSON: hostname, uptime, services (state, pid, starts, last exit), boot errors
//	GET /logs    the console log ring as text (?service=NAME keeps that service's lines)
//	GET /healthz 200 "ok"
type Status struct {
	cfg     StatusConfig
	started time.Time
	ln      net.Listener
	srv     *http.Server
}

// StatusReport is GET /status's body.
type StatusReport struct {
	Hostname string          `json:"hostname"`
	Uptime   string          `json:"uptime"`
	Services []ServiceStatus `json:"services"`
	Orphans  int             `json:"orphans_reaped"`
	Errors   []string        `json:"errors,omitempty"`
}

// NewStatus returns the endpoint; Listen binds it.
func NewStatus(cfg StatusConfig) *Status {
	if cfg.Addr == "" {
		cfg.Addr = ":9100"
	}
	s := &Status{cfg: cfg, started: time.Now()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", s.status)
	mux.HandleFunc("GET /logs", s.logs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Listen binds the address.
func (s *Status) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address (after Listen).
func (s *Status) Addr() net.Addr { return s.ln.Addr() }

// Serve answers until Shutdown; ctx ending shuts it down too.
func (s *Status) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = s.Shutdown(context.Background()) })
	defer stop()
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("status: %w", err)
	}
	return nil
}

// Shutdown stops answering; requests in flight finish.
func (s *Status) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

func (s *Status) status(w http.ResponseWriter, _ *http.Request) {
	r := StatusReport{Hostname: s.cfg.Hostname, Uptime: time.Since(s.started).Round(time.Second).String(), Services: []ServiceStatus{}}
	if s.cfg.Supervisor != nil {
		r.Services = s.cfg.Supervisor.Status()
	}
	if s.cfg.Reaper != nil {
		r.Orphans = s.cfg.Reaper.Orphans()
	}
	if s.cfg.Errors != nil {
		r.Errors = s.cfg.Errors()
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r)
}

func (s *Status) logs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	b := s.cfg.Ring.Bytes()
	svc := r.URL.Query().Get("service")
	if svc == "" {
		_, _ = w.Write(b)
		return
	}
	prefix := svc + ": "
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, prefix) {
			_, _ = w.Write([]byte(line))
		}
	}
}
