package main

import (
	"fmt"
	"io"
	"os"
)

// maxListBytes bounds what farmctl reads as a list: a farm of MaxServers
// servers in JSON stays well under it.
const maxListBytes = 16 << 20

func readFileLimited(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimited(f)
}

func readAllLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxListBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxListBytes {
		return nil, fmt.Errorf("list is larger than %d bytes", maxListBytes)
	}
	return b, nil
}
