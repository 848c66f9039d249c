package clientlib_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/farmlb/farmlb/clientlib"
	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/internal/farmtest"
	"go.uber.org/goleak"
)

// These tests run real pushd processes (internal/farmtest) and the client
// against them over loopback, and break the farm as production would.

// publisher publishes 1, 2, 3 … on a topic to whichever node answers,
// retrying a failed publish on the next node with the same idempotency key,
// so each number is published exactly once.
type publisher struct {
	f     *farmtest.Farm
	topic string
	nodes []string
	mu    sync.Mutex
	last  int
}

func (p *publisher) publish(t *testing.T, ctx context.Context) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.last + 1
	key := fmt.Sprintf("%s-%d", p.topic, n)
	var err error
	for attempt := range 3 * len(p.nodes) {
		node := p.nodes[(n+attempt)%len(p.nodes)]
		if _, err = p.f.PublishKey(ctx, node, p.topic, strconv.Itoa(n), key); err == nil {
			p.last = n
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("publish %d: %v", n, err)
}

// collector reads a client's events and checks the sequence as it goes.
type collector struct {
	mu     sync.Mutex
	got    []int
	nodes  []string
	resets int
	done   chan struct{}
}

func collect(cl *clientlib.Client) *collector {
	c := &collector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ev := range cl.Events() {
			c.mu.Lock()
			if ev.Reset {
				c.resets++
			} else if n, err := strconv.Atoi(ev.Data); err == nil {
				c.got = append(c.got, n)
				c.nodes = append(c.nodes, ev.Node)
			}
			c.mu.Unlock()
		}
	}()
	return c
}

// waitFor waits until the collector has seen n, or fails.
func (c *collector) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		ok := len(c.got) > 0 && c.got[len(c.got)-1] >= n
		c.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("client did not see %d within %v; got %v", n, timeout, c.got)
}

// checkExactlyOnce asserts the client saw from..to, each once, in order.
func (c *collector) checkExactlyOnce(t *testing.T, from, to int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	want := from
	for _, n := range c.got {
		if n != want {
			t.Fatalf("sequence broken at %d (want %d): lost or duplicated; got %v", n, want, c.got)
		}
		want++
	}
	if want != to+1 {
		t.Fatalf("got up to %d, want %d", want-1, to)
	}
	if c.resets != 0 {
		t.Errorf("%d reset events", c.resets)
	}
}

func fastConfig(f *farmtest.Farm, topic string) clientlib.Config {
	return clientlib.Config{
		ListURLs:        f.ListURLs(),
		Topics:          []string{topic},
		Seed:            1,
		RetryDelay:      100 * time.Millisecond,
		IdleTimeout:     30 * time.Second, // longer than every wait below: a failover must not wait for it
		RecheckInterval: 200 * time.Millisecond,
		MoveBackWindow:  500 * time.Millisecond,
		ExcludeFor:      2 * time.Second,
	}
}

// subscribeN subscribes n clients to "seq", seeded firstSeed, firstSeed+1, …,
// each with a collector reading its events.
func subscribeN(t *testing.T, ctx context.Context, f *farmtest.Farm, n int, firstSeed uint64) ([]*clientlib.Client, []*collector) {
	t.Helper()
	var clients []*clientlib.Client
	var cols []*collector
	for i := range n {
		cfg := fastConfig(f, "seq")
		cfg.Seed = firstSeed + uint64(i)
		cl, err := clientlib.Subscribe(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
		cols = append(cols, collect(cl))
	}
	return clients, cols
}

func TestKilledNodeNoGapNoDuplicate(t *testing.T) {
	// Registered first, so it runs after the farm's own cleanup.
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	f := farmtest.Start(t, farmtest.Options{Nodes: []farmtest.NodeSpec{{Name: "serverA"}, {Name: "serverB"}, {Name: "serverC"}}})
	f.WaitUp(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cl, err := clientlib.Subscribe(ctx, fastConfig(f, "seq"))
	if err != nil {
		t.Fatal(err)
	}
	col := collect(cl)
	pub := &publisher{f: f, topic: "seq", nodes: []string{"serverA", "serverB", "serverC"}}
	// The first message reaches the client once it streams.
	for cl.Node() == "" {
		time.Sleep(10 * time.Millisecond)
	}
	for range 20 {
		pub.publish(t, ctx)
	}
	col.waitFor(t, 20, 10*time.Second)

	victim := cl.Node()
	f.Kill(victim)
	var alive []string
	for _, n := range pub.nodes {
		if n != victim {
			alive = append(alive, n)
		}
	}
	pub.nodes = alive
	for range 30 { // published while the client fails over
		pub.publish(t, ctx)
	}
	col.waitFor(t, 50, 20*time.Second)
	cl.Close()
	<-col.done
	col.checkExactlyOnce(t, 1, 50)

	fo := cl.Failovers()
	var moved *clientlib.Failover
	for i := range fo {
		if fo[i].From == victim {
			moved = &fo[i]
		}
	}
	if moved == nil || moved.To == victim || moved.To == "" {
		t.Fatalf("no failover away from %s recorded: %+v", victim, fo)
	}
	t.Logf("failover %s -> %s after %v (%s)", moved.From, moved.To, moved.Took, moved.Reason)
	// A killed node's stream ends at once (EOF or reset), so the client moves
	// without waiting for any timeout: measured 142–161 ms under -race on a
	// loaded 2-core machine. The bound is generous; a client that waited for
	// its idle timeout or for the mesh to report the node DOWN would miss it.
	if moved.Took > failoverBound {
		t.Errorf("failover took %v, want ≤ %v", moved.Took, failoverBound)
	}
}

// failoverBound is how long a client may take to move off a killed node.
const failoverBound = 2 * time.Second

func TestGroupBOnlyWhileGroupADown(t *testing.T) {
	// Registered first, so it runs after the farm's own cleanup.
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	f := farmtest.Start(t, farmtest.Options{Nodes: []farmtest.NodeSpec{
		{Name: "serverA"}, {Name: "serverB"}, {Name: "serverC", Priority: "B"},
	}})
	f.WaitUp(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Several clients: none may pick the group-B node while A is UP.
	clients, cols := subscribeN(t, ctx, f, 6, 1)
	pub := &publisher{f: f, topic: "seq", nodes: []string{"serverC"}}
	waitNodes := func(cond func(string) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			ok := true
			for _, cl := range clients {
				ok = ok && cond(cl.Node())
			}
			if ok {
				return
			}
			pub.publish(t, ctx)
			time.Sleep(50 * time.Millisecond)
		}
		var on []string
		for _, cl := range clients {
			on = append(on, cl.Node())
		}
		t.Fatalf("clients not %s: on %v", what, on)
	}
	inA := func(n string) bool { return n == "serverA" || n == "serverB" }
	waitNodes(inA, "on group A")

	// Group A goes down: everyone moves to group B and keeps streaming.
	f.Kill("serverA")
	f.Kill("serverB")
	waitNodes(func(n string) bool { return n == "serverC" }, "on group B")

	// Group A comes back: everyone moves back, spread over the window.
	f.Restart("serverA")
	f.Restart("serverB")
	f.WaitStatus(10*time.Second, farm.StatusUp, []string{"serverA", "serverB"}, "serverC")
	pub.nodes = []string{"serverA", "serverB", "serverC"}
	waitNodes(inA, "back on group A")
	// Back on group A they stay: no further failover while the farm is whole.
	settled := make([]int, len(clients))
	for i, cl := range clients {
		settled[i] = len(cl.Failovers())
	}
	for range 5 {
		pub.publish(t, ctx)
	}
	last := pub.last
	for i, cl := range clients {
		cols[i].waitFor(t, last, 10*time.Second)
		cl.Close()
		<-cols[i].done
		cols[i].mu.Lock()
		first := cols[i].got[0]
		cols[i].mu.Unlock()
		cols[i].checkExactlyOnce(t, first, last)
		if fo := cl.Failovers(); len(fo) != settled[i] {
			t.Errorf("client %d failed over again on a whole farm: %+v", i, fo[settled[i]:])
		}
		if !inA(cl.Node()) && cl.Node() != "" {
			t.Errorf("client %d ended on %s", i, cl.Node())
		}
	}
}

// TestDrainMovesClients drains a node: its clients are told to move, go to
// the node the farm suggests, and lose nothing; a new client never picks the
// DRAINING node.
func TestDrainMovesClients(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })
	f := farmtest.Start(t, farmtest.Options{
		Nodes: []farmtest.NodeSpec{{Name: "serverA"}, {Name: "serverB"}},
		Extra: "pushd:\n  drain_window: 1s\n",
	})
	f.WaitUp(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	clients, cols := subscribeN(t, ctx, f, 8, 100)
	pub := &publisher{f: f, topic: "seq", nodes: []string{"serverB"}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		onA := 0
		ready := true
		for _, cl := range clients {
			ready = ready && cl.Node() != ""
			if cl.Node() == "serverA" {
				onA++
			}
		}
		if ready && onA > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("clients did not spread over both nodes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pub.publish(t, ctx)

	if code, body := f.Post(ctx, "serverA", "/admin/drain"); code != 200 {
		t.Fatalf("drain: %d %s", code, body)
	}
	f.WaitStatus(5*time.Second, farm.StatusDraining, []string{"serverA"})
	for range 20 {
		pub.publish(t, ctx)
		time.Sleep(50 * time.Millisecond)
	}
	// Every client ends on serverB, with the whole sequence.
	deadline = time.Now().Add(15 * time.Second)
	for _, cl := range clients {
		for cl.Node() != "serverB" {
			if time.Now().After(deadline) {
				t.Fatalf("a client is still on %q after the drain", cl.Node())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A new client never picks the DRAINING node.
	for i := range 5 {
		cfg := fastConfig(f, "seq")
		cfg.Seed = uint64(200 + i)
		cl, err := clientlib.Subscribe(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for cl.Node() == "" {
			time.Sleep(10 * time.Millisecond)
		}
		if cl.Node() != "serverB" {
			t.Errorf("a new client picked %s while it drains", cl.Node())
		}
		cl.Close()
	}
	pub.publish(t, ctx)
	for i, cl := range clients {
		cols[i].waitFor(t, pub.last, 10*time.Second)
		cl.Close()
		<-cols[i].done
		cols[i].checkExactlyOnce(t, 1, pub.last)
		moved := false
		for _, fo := range cl.Failovers() {
			moved = moved || fo.From == "serverA" && fo.To == "serverB"
		}
		if cols[i].nodes[0] == "serverA" && !moved {
			t.Errorf("client %d left serverA without a recorded move: %+v", i, cl.Failovers())
		}
	}
}
