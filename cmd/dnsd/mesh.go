package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/peerlink"
)

// startMesh joins the farm's mesh as the observer name: it binds the mesh's
// socket now (so a taken port fails the start) and serves once run.
func startMesh(f *config.Farm, name string, log *slog.Logger, reg prometheus.Registerer) (*peerlink.Mesh, error) {
	cfg := peerlink.FarmConfig(f, name) // the timers of the farm file's mesh: section
	cfg.Logger = log
	cfg.Registerer = reg
	m, err := peerlink.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.Listen(); err != nil {
		return nil, err
	}
	return m, nil
}
