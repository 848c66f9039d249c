# pushd: the push server. `make run` (in the Makefile) starts scripts/run.sh.
.PHONY: bench-pushd bench-pushd-memory bench-pushd-memory-h2 bench-pushd-fanout bench-pushd-fanout-sweep bench-pushd-publish

bench-pushd: bench-pushd-memory bench-pushd-memory-h2 bench-pushd-fanout bench-pushd-publish ## every pushd benchmark

bench-pushd-memory: build ## RSS per idle SSE stream (STREAMS=19000)
	bench/pushd-memory.sh

bench-pushd-memory-h2: build ## RSS per idle HTTP/2 (h2c) stream, 100 per connection (STREAMS=19000)
	PROTO=h2 bench/pushd-memory.sh

bench-pushd-fanout: build ## p50/p99 delivery of one publish to SUBS=10000 streams
	bench/pushd-fanout.sh

bench-pushd-publish: build ## sustained publishes per second across three nodes
	bench/pushd-publish.sh

bench-pushd-fanout-sweep: build ## fan-out against the bare write(2) floor at SWEEP="1000 2500 5000 10000" streams
	bench/pushd-fanout-sweep.sh
