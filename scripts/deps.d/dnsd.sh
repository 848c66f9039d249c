# dnsd: Unbound for the resolver test (dnsd/unbound_test.go), dnsperf and NSD
# for the benchmark against NSD (bench/dnsd.sh), dig for trying it by hand and
# for TestDigCookie, curl for the flood benchmark (bench/dnsd-flood.sh).
want unbound unbound
want dnsperf dnsperf
want nsd nsd
want dig dnsutils
want curl curl
# DNSSEC: delv validates dnsd's signed answers, ldns-verify-zone checks a
# signed --print-zone and ldns-signzone signs the zone NSD serves in the
# benchmark (cmd/dnsd/dnssec_test.go, bench/dnsd.sh DNSSEC=1).
want delv bind9-dnsutils
want ldns-verify-zone ldnsutils
want ldns-signzone ldnsutils
