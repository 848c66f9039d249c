// Package kernel pins the appliance's kernel; see go.mod. `make image`
// reads vmlinuz from the module's folder:
//
//	go list -C tools/kernel -m -f '{{.Dir}}' github.com/gokrazy/kernel.amd64
package kernel

import _ "github.com/gokrazy/kernel.amd64"
