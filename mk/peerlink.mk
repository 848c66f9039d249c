# peerlink: the QUIC mesh (see BENCHMARKS.md "peerlink: the mesh").
.PHONY: test-peerlink bench-peerlink soak-peerlink

test-peerlink: ## peerlink and config tests with -race
	$(GO) test -race -count=1 ./config/ ./peerlink/

bench-peerlink: ## detection time, status propagation and idle cost of the mesh, with real processes
	@mkdir -p build && $(GO) build -o build/peerlink-bench ./bench/peerlink
	build/peerlink-bench detect -members 5 -kills 20
	build/peerlink-bench propagate -members 5 -changes 200
	build/peerlink-bench idle -members 32 -duration 30s

soak-peerlink: ## 10-minute no-false-DOWN soaks, idle and busy (20+ minutes)
	bench/peerlink-soak.sh 10m
