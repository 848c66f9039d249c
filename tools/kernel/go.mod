// The appliance's kernel, pinned as a Go module so that `make image` is
// reproducible: gokrazy's upstream Linux build for amd64 (virtio, e1000,
// EFI stub built in; no modules to load). Update with
//   go get github.com/gokrazy/kernel.amd64@latest
module github.com/farmlb/farmlb/tools/kernel

go 1.26

require github.com/gokrazy/kernel.amd64 v0.0.0-20260705070735-de680abf072b
