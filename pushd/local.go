package pushd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/farmlb/farmlb/farm"
)

// LocalMesh is a Mesh of one node with no network: the node's own entry
// is live, every other entry of the list stays as given. It serves
// development and benchmarks of a single node (pushd --standalone).
type LocalMesh struct {
	self   string
	mu     sync.Mutex
	list   atomic.Pointer[farm.List]
	users  int
	st     farm.Status
	reason string
	subs   map[chan struct{}]struct{}
}

// ErrNoMesh is what LocalMesh.Send returns: there is no one to send to.
var ErrNoMesh = errors.New("pushd: no mesh (standalone)")

// NewLocalMesh returns a LocalMesh for node self of list (copied).
func NewLocalMesh(list *farm.List, self string) *LocalMesh {
	m := &LocalMesh{self: self, subs: map[chan struct{}]struct{}{}}
	l := list.Clone()
	for i := range l.Servers {
		if l.Servers[i].Name != self {
			l.Servers[i].Status = farm.StatusDown
		}
	}
	m.list.Store(l)
	return m
}

func (m *LocalMesh) Self() string      { return m.self }
func (m *LocalMesh) Table() *farm.List { return m.list.Load() }

func (m *LocalMesh) Subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	m.mu.Lock()
	m.subs[c] = struct{}{}
	m.mu.Unlock()
	return c, func() {
		m.mu.Lock()
		delete(m.subs, c)
		m.mu.Unlock()
	}
}

func (m *LocalMesh) SetUsers(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users = n
	m.updateLocked()
}

// SetStatus sets the node's status with no reason.
func (m *LocalMesh) SetStatus(s farm.Status) { m.SetState(s, "") }

// SetState sets the node's status and its reason.
func (m *LocalMesh) SetState(s farm.Status, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st, m.reason = s, reason
	m.updateLocked()
}

func (m *LocalMesh) updateLocked() {
	l := m.list.Load().Clone()
	for i := range l.Servers {
		if l.Servers[i].Name == m.self {
			l.Servers[i].Status, l.Servers[i].Users, l.Servers[i].Reason = m.st, m.users, m.reason
		}
	}
	m.list.Store(l)
	for c := range m.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

func (m *LocalMesh) Send(context.Context, string, []byte) error { return ErrNoMesh }
