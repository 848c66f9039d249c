# testbed: the network-namespace lab (needs root). See README.md "The testbed".
TESTBED_OUT ?= build/testbed
TESTBED_FLAGS ?= --quiet

.PHONY: testbed testbed-ci testbed-down

testbed: deps build ## run every testbed scenario on the real binaries in a namespace lab (root); one summary line each
	bin/testbed run $(TESTBED_FLAGS) --out $(TESTBED_OUT) all

testbed-ci: deps build ## the testbed scenarios CI runs: failover and partition (root)
	bin/testbed run $(TESTBED_FLAGS) --out $(TESTBED_OUT) failover partition

testbed-down: build ## remove what a crashed testbed left behind (namespaces, links, processes named flb-*)
	bin/testbed down
