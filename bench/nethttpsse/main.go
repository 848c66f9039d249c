// Command nethttpsse is the yardstick for bench/pushd-memory.sh
// (SERVER=nethttp): the plainest SSE server net/http allows, whose handler
// writes the headers and one event and then waits for the client to go, so
// every idle stream keeps its handler goroutine and net/http's buffers. It
// serves HTTP/1.1 and HTTP/2 (h2c, prior knowledge) on -addr: GET /stream,
// GET /healthz, and GET /metrics with Go's runtime metrics and
// nethttpsse_streams.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.31:8080", "HTTP listen address")
	flag.Parse()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	streams := prometheus.NewGauge(prometheus.GaugeOpts{Name: "nethttpsse_streams", Help: "Open SSE streams."})
	reg.MustRegister(streams)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		streams.Inc()
		defer streams.Dec()
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("retry: 1000\n\n"))
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Addr: *addr, Handler: mux, Protocols: &protos}
	// It runs until killed: the benchmark ends it with its clients.
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "nethttpsse:", err)
		os.Exit(1)
	}
}
