# farmlb.js (webclient/): its unit tests run under Node's own test runner;
# the browser test (webclient/e2e_test.go, part of go test ./...) drives
# Debian's Chromium through playwright-core, installed here.
.PHONY: test-js webclient-npm
test: test-js
test-js: webclient-npm ## farmlb.js against the Go policies' shared vectors
	node --test --test-reporter=dot webclient/farmlb.test.mjs

webclient-npm:
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	@[ -d webclient/e2e/node_modules/playwright-core ] && [ -d webclient/e2e/node_modules/eventsource ] || (cd webclient/e2e && npm ci --no-audit --no-fund)
