// Package webclient holds farmlb.js, the browser client, and a demo page
// that uses it, so that pushd can serve both from its binary with no build
// step.
package webclient

import (
	"embed"
	"io/fs"
	"net/http"
)

// FarmlbJS is the ES module served at /farmlb.js.
//
//go:embed farmlb.js
var FarmlbJS []byte

//go:embed demo
var demoFS embed.FS

// Register adds GET /farmlb.js and GET /demo/ (a live price board fed by
// the demo feed through farmlb.js) to mux.
func Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /farmlb.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Write(FarmlbJS)
	})
	demo, _ := fs.Sub(demoFS, "demo")
	mux.Handle("GET /demo/", http.StripPrefix("/demo/", http.FileServerFS(demo)))
}
