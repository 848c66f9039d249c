# dnsd: Unbound for the resolver test (dnsd/unbound_test.go), dnsperf and NSD
# for the benchmark against NSD (bench/dnsd.sh), dig for trying it by hand and
# for TestDigCookie, curl for the flood benchmark (bench/dnsd-flood.sh).
want unbound unbound
want dnsperf dnsperf
want nsd nsd
want dig dnsutils
want curl curl
