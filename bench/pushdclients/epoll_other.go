//go:build !linux

package main

import (
	"bufio"
	"errors"
	"net"
	"time"
)

func fanoutEpoll([]net.Conn, []*bufio.Reader, int) ([]time.Duration, error) {
	return nil, errors.New("-epoll needs Linux; use -epoll=false")
}
