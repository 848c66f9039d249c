package pushd

import (
	"context"
	"errors"
	"sync"

	"github.com/farmlb/farmlb/farm"
)

// memFarm is an in-memory stand-in for the mesh, for tests of pushd's own
// logic (the seam is the Mesh interface; the HTTP side stays real). Tests
// with the real QUIC mesh live in mesh_integration_test.go.
type memFarm struct {
	mu     sync.Mutex
	nodes  []string
	status map[string]farm.Status
	reason map[string]string
	users  map[string]int
	urls   map[string]string
	prio   map[string]farm.Priority
	cut    map[[2]string]bool // from→to links that drop everything
	// unreach: from→to links whose sends fail at once while the table
	// shows the peer UP, as the mesh's Send to a peer that is
	// unreachable (its link cut, another member vouching for it).
	unreach map[[2]string]bool
	handle  map[string]func(from string, body []byte) error
	subs    map[chan struct{}]bool
	sendMu  map[[2]string]*sync.Mutex
}

var errPeerDown = errors.New("peer down")

func newMemFarm(names ...string) *memFarm {
	f := &memFarm{nodes: names, status: map[string]farm.Status{}, reason: map[string]string{}, users: map[string]int{}, urls: map[string]string{},
		prio: map[string]farm.Priority{}, cut: map[[2]string]bool{}, unreach: map[[2]string]bool{}, handle: map[string]func(string, []byte) error{},
		subs: map[chan struct{}]bool{}, sendMu: map[[2]string]*sync.Mutex{}}
	for _, n := range names {
		f.urls[n] = "http://" + n + ".invalid"
	}
	return f
}

func (f *memFarm) changed() {
	for c := range f.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

func (f *memFarm) setStatus(name string, s farm.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[name] = s
	f.changed()
}

func (f *memFarm) setCut(from, to string, cut bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut[[2]string{from, to}] = cut
}

func (f *memFarm) setUnreachable(from, to string, cut bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unreach[[2]string{from, to}] = cut
}

func (f *memFarm) mesh(name string) *memMesh { return &memMesh{f: f, self: name} }

type memMesh struct {
	f    *memFarm
	self string
}

func (m *memMesh) Self() string { return m.self }

func (m *memMesh) Table() *farm.List {
	f := m.f
	f.mu.Lock()
	defer f.mu.Unlock()
	l := &farm.List{Service: "stream.test", Reporter: m.self}
	for _, n := range f.nodes {
		l.Servers = append(l.Servers, farm.Server{Name: n, URL: f.urls[n], Status: f.status[n], Reason: f.reason[n], Users: f.users[n], Priority: f.prio[n]})
	}
	return l
}

func (m *memMesh) Subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	m.f.mu.Lock()
	m.f.subs[c] = true
	m.f.mu.Unlock()
	return c, func() {
		m.f.mu.Lock()
		delete(m.f.subs, c)
		m.f.mu.Unlock()
	}
}

func (m *memMesh) SetUsers(n int) {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	m.f.users[m.self] = n
	m.f.changed()
}

func (m *memMesh) SetState(s farm.Status, reason string) {
	m.f.mu.Lock()
	m.f.reason[m.self] = reason
	m.f.mu.Unlock()
	m.f.setStatus(m.self, s)
}

func (m *memMesh) Send(ctx context.Context, peer string, body []byte) error {
	f := m.f
	f.mu.Lock()
	h := f.handle[peer]
	down := !takesData(farm.Server{Status: f.status[peer], Reason: f.reason[peer]}) || !takesData(farm.Server{Status: f.status[m.self], Reason: f.reason[m.self]}) || h == nil || f.unreach[[2]string{m.self, peer}]
	cut := f.cut[[2]string{m.self, peer}]
	k := [2]string{m.self, peer}
	mu := f.sendMu[k]
	if mu == nil {
		mu = &sync.Mutex{}
		f.sendMu[k] = mu
	}
	f.mu.Unlock()
	if down {
		return errPeerDown
	}
	if cut {
		return nil // lost on the way, yet acknowledged: a gap for the peer to find
	}
	mu.Lock() // in order per pair, as the real mesh
	defer mu.Unlock()
	return h(m.self, append([]byte(nil), body...))
}
