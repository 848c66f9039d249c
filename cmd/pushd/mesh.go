package main

import (
	"log/slog"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/peerlink"
	"github.com/farmlb/farmlb/pushd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"
)

// newMesh builds the node's mesh: peerlink's QUIC mesh with the farm's
// mutual TLS, or with --standalone a mesh of this node alone.
func newMesh(c *cli.Context, f *config.Farm, self string, log *slog.Logger, reg prometheus.Registerer, handler func(string, []byte) error) (meshRunner, error) {
	if c.Bool("standalone") {
		return localRunner{pushd.NewLocalMesh(f.InitialList(), self)}, nil
	}
	cfg := peerlink.FarmConfig(f, self) // the timers of the farm file's mesh: section
	cfg.Logger = log
	cfg.Registerer = reg
	cfg.Handler = handler
	return peerlink.New(cfg)
}
