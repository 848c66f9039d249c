# dnsd: the authoritative DNS server.
.PHONY: bench-dnsd fuzz-dnsd test-dnsd
bench-dnsd: deps ## dnsd against NSD: dnsperf with RRL off, and bench/dnsload from 4096 sources with RRL on in both (RUNS=3 SECONDS_PER_RUN=10)
	bench/dnsd.sh

test-dnsd: deps ## dnsd's tests alone, with -race (includes the Unbound test)
	$(GO) test -race -count=1 ./dnsd/ ./cmd/dnsd/ ./config/

fuzz-dnsd: ## dnsd's fuzz targets (the query path, the COOKIE option) for FUZZTIME each (default 5s; try FUZZTIME=5m)
	$(GO) test -run '^$$' -fuzz '^FuzzQuery$$' -fuzztime $(FUZZTIME) ./dnsd/
	$(GO) test -run '^$$' -fuzz '^FuzzCookie$$' -fuzztime $(FUZZTIME) ./dnsd/

.PHONY: bench-dnsd-dnssec
bench-dnsd-dnssec: deps ## dnsd signing online against NSD serving the zone signed by ldns-signzone, DO set (DNSSEC=1 bench/dnsd.sh)
	DNSSEC=1 bench/dnsd.sh

.PHONY: bench-dnsd-flood
bench-dnsd-flood: deps ## dnsd and NSD under a reflection flood, RRL on and off, and a flood from 100,000 forged sources (SECONDS_PER_RUN=10)
	bench/dnsd-flood.sh
