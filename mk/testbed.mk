# testbed: the network-namespace lab (needs root). See README.md "The testbed".
TESTBED_OUT ?= build/testbed
# Progress (every 2 s: time, faults, users per node, published/acked) is
# shown; TESTBED_FLAGS=--quiet leaves only the summary lines.
TESTBED_FLAGS ?=

.PHONY: testbed testbed-ci testbed-down

testbed: deps build ## run every testbed scenario on the real binaries in a namespace lab (root), with progress and a summary line each
	bin/testbed run $(TESTBED_FLAGS) --out $(TESTBED_OUT) all

testbed-ci: deps build ## a quick pair of testbed scenarios: failover and partition (root; CI runs them all)
	bin/testbed run $(TESTBED_FLAGS) --out $(TESTBED_OUT) failover partition

testbed-down: build ## remove what a crashed testbed left behind: its flb-* namespaces, bridge and veths, and the processes in them
	bin/testbed down
