# farmlb.js (webclient/): its tests run under Node's own test runner.
.PHONY: test-js
test: test-js
test-js: ## farmlb.js against the Go policies' shared vectors
	node --test webclient/
