package peerlink

import (
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
)

func TestMeshComesUp(t *testing.T) {
	pki := newTestPKI(t)
	names := []string{"a", "b", "c"}
	tf := newTestFarm(t, names, []string{"ns1"})
	var ms []*member
	for _, n := range append(names, "ns1") {
		ms = append(ms, startMember(t, tf, pki, n, nil))
	}
	for _, m := range ms {
		waitTable(t, m.Mesh, 5*time.Second, "every node UP", allUp(names...))
	}
	ms[1].SetUsers(42)
	for _, m := range ms {
		waitTable(t, m.Mesh, 2*time.Second, "b has 42 users", func(l *farm.List) bool {
			s, _ := l.Find("b")
			return s.Users == 42
		})
	}
}
