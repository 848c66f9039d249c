// Package webclient holds farmlb.js, the browser client, so that pushd can
// serve it from its binary with no build step.
package webclient

import _ "embed"

// FarmlbJS is the ES module served at /farmlb.js.
//
//go:embed farmlb.js
var FarmlbJS []byte
