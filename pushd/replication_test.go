package pushd

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
)

// TestHTTP2Stream streams over h2c (HTTP/2 without TLS), the path that
// keeps the handler goroutine.
func TestHTTP2Stream(t *testing.T) {
	f := newMemFarm("a")
	nodes := startNodes(t, f, nil, "a")
	c := openStream(t, h2cClient(t), streamURL(nodes["a"], "t"), "")
	if c.resp.ProtoMajor != 2 {
		t.Fatalf("proto %s", c.resp.Proto)
	}
	if !(nodes["a"].s.Users() == 1) {
		t.Fatal("streams not counted once their headers arrived: nodes[\"a\"].s.Users() == 1")
	}
	mustPublish(t, nodes["a"].url, "t", "over h2")
	if ev := c.next(t); ev.Data != "over h2" {
		t.Fatalf("%+v", ev)
	}
	c.close()
	waitFor(t, func() bool { return nodes["a"].s.Users() == 0 })
}

// TestHTTP2IdleStreamOutlivesWriteTimeout: over HTTP/2 the write deadline
// of each write is the stream's own timer; an idle stream stays open
// however long past WriteTimeout nothing is written.
func TestHTTP2IdleStreamOutlivesWriteTimeout(t *testing.T) {
	const writeTimeout = 100 * time.Millisecond
	f := newMemFarm("a")
	nodes := startNodes(t, f, func(c *Config) {
		c.WriteTimeout = writeTimeout
		c.KeepAlive = time.Hour
	}, "a")
	c := openStream(t, h2cClient(t), streamURL(nodes["a"], "t"), "")
	if c.resp.ProtoMajor != 2 {
		t.Fatalf("proto %s", c.resp.Proto)
	}
	// Idle well past the write timeout: the time itself is under test.
	time.Sleep(5 * writeTimeout)
	if n := nodes["a"].s.Users(); n != 1 {
		t.Fatalf("%d streams open after %v idle, want 1", n, 5*writeTimeout)
	}
	mustPublish(t, nodes["a"].url, "t", "after idle")
	if ev := c.next(t); ev.Data != "after idle" {
		t.Fatalf("%+v", ev)
	}
	c.close()
	waitFor(t, func() bool { return nodes["a"].s.Users() == 0 })
}

// TestGapFill: messages lost on the way to one node leave a gap it notices
// with the next message; it fetches the missing range from a peer and its
// clients get everything, in order.
func TestGapFill(t *testing.T) {
	f := newMemFarm("a", "b", "c")
	nodes := startNodes(t, f, nil, "a", "b", "c")
	c := openStream(t, nil, streamURL(nodes["c"], "t"), "")
	if !(nodes["c"].s.Users() == 1) {
		t.Fatal("streams not counted once their headers arrived: nodes[\"c\"].s.Users() == 1")
	}
	mustPublish(t, nodes["a"].url, "t", "1")
	f.setCut("a", "c", true)
	mustPublish(t, nodes["a"].url, "t", "2")
	mustPublish(t, nodes["a"].url, "t", "3")
	f.setCut("a", "c", false)
	mustPublish(t, nodes["a"].url, "t", "4")
	got := c.data(t, 4)
	if strings.Join(got, ",") != "1,2,3,4" {
		t.Errorf("got %v", got)
	}
	c.expectNothing(t, 100*time.Millisecond)
}

// TestOriginDiesMidSend: the origin reached one peer and not the other,
// then died; the peer that missed it learns of it when the origin goes DOWN
// (the others tell what they hold) and fetches it.
func TestOriginDiesMidSend(t *testing.T) {
	f := newMemFarm("a", "b", "c")
	nodes := startNodes(t, f, nil, "a", "b", "c")
	c := openStream(t, nil, streamURL(nodes["c"], "t"), "")
	if !(nodes["c"].s.Users() == 1) {
		t.Fatal("streams not counted once their headers arrived: nodes[\"c\"].s.Users() == 1")
	}
	f.setCut("a", "c", true)
	mustPublish(t, nodes["a"].url, "t", "only b has it")
	nodes["a"].stop()
	if ev := c.next(t); ev.Data != "only b has it" {
		t.Fatalf("%+v", ev)
	}
}

// TestAloneNodeDeliversAtOnce: with no other node UP, a publish is held by
// every UP node as soon as this one has it.
func TestAloneNodeDeliversAtOnce(t *testing.T) {
	f := newMemFarm("a", "b")
	nodes := startNodes(t, f, nil, "a", "b")
	nodes["b"].stop()
	c := openStream(t, nil, streamURL(nodes["a"], "t"), "")
	if !(nodes["a"].s.Users() == 1) {
		t.Fatal("streams not counted once their headers arrived: nodes[\"a\"].s.Users() == 1")
	}
	mustPublish(t, nodes["a"].url, "t", "alone")
	if ev := c.next(t); ev.Data != "alone" {
		t.Fatalf("%+v", ev)
	}
}

// TestManyPublishersOrder: three publishers on three nodes; every client
// gets every message once and each publisher's messages in order.
func TestManyPublishersOrder(t *testing.T) {
	f := newMemFarm("a", "b", "c")
	nodes := startNodes(t, f, nil, "a", "b", "c")
	names := []string{"a", "b", "c"}
	var cs []*sseClient
	for _, n := range names {
		cs = append(cs, openStream(t, nil, streamURL(nodes[n], "t"), ""))
	}
	if !(nodes["a"].s.Users()+nodes["b"].s.Users()+nodes["c"].s.Users() == 3) {
		t.Fatal("streams not counted once their headers arrived: nodes[\"a\"].s.Users()+nodes[\"b\"].s.Users()+nodes[\"c\"].s.Users() == 3")
	}
	const per = 30
	done := make(chan struct{})
	for _, n := range names {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < per; i++ {
				req, _ := http.NewRequest("POST", nodes[n].url+"/publish/t", strings.NewReader(fmt.Sprintf("%s-%d", n, i)))
				req.Header.Set("Authorization", "Bearer "+testToken)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	for range names {
		<-done
	}
	for ci, c := range cs {
		next := map[string]int{}
		for _, ev := range c.collect(t, 3*per) {
			var pub string
			var i int
			fmt.Sscanf(strings.Replace(ev.Data, "-", " ", 1), "%s %d", &pub, &i)
			if next[pub] != i {
				t.Fatalf("client %d: %s, want %s-%d", ci, ev.Data, pub, next[pub])
			}
			next[pub]++
		}
		c.expectNothing(t, 100*time.Millisecond)
	}
	_ = farm.StatusUp
}

// TestLateNodeCatchesUp: a node that starts (or restarts) after messages
// were published fetches the history from its peers, so a client resuming
// there gets what it missed; a new client there gets only new messages.
func TestLateNodeCatchesUp(t *testing.T) {
	f := newMemFarm("a", "b", "c")
	nodes := startNodes(t, f, nil, "a", "b")
	c := openStream(t, nil, streamURL(nodes["a"], "t"), "")
	if !(nodes["a"].s.Users() == 1) {
		t.Fatal("streams not counted once their headers arrived: nodes[\"a\"].s.Users() == 1")
	}
	mustPublish(t, nodes["a"].url, "t", "1")
	c.collect(t, 1)
	last := c.lastID
	mustPublish(t, nodes["b"].url, "t", "2")
	mustPublish(t, nodes["a"].url, "t", "3")
	late := startNodes(t, f, nil, "c")["c"]
	fresh := openStream(t, nil, streamURL(late, "t"), "")
	resumed := openStream(t, nil, streamURL(late, "t"), last)
	got := resumed.data(t, 2)
	if g := strings.Join(got, ","); g != "3,2" && g != "2,3" {
		t.Errorf("resumed on the late node: %v, want 2 and 3", got)
	}
	mustPublish(t, nodes["b"].url, "t", "4")
	if ev := fresh.next(t); ev.Data != "4" {
		t.Errorf("new client on the late node got %+v, want only 4", ev)
	}
	if ev := resumed.next(t); ev.Data != "4" {
		t.Errorf("resumed client: %+v", ev)
	}
}

// TestForget: topics nobody streams and nothing was published on do not
// stay in memory; a topic another node published on goes a day after its
// history; one this node published on stays (its seq must not restart).
func TestForget(t *testing.T) {
	f := newMemFarm("a")
	nodes := startNodes(t, f, nil, "a")
	s := nodes["a"].s
	c := openStream(t, nil, streamURL(nodes["a"], "empty", "kept", "theirs"), "")
	mustPublish(t, nodes["a"].url, "kept", "x")
	s.HandlePeer("b", encodeMessages([]*message{{Topic: "theirs", Origin: "b", Epoch: 42, Seq: 1, At: time.Now(), Data: []byte("y")}}))
	c.collect(t, 2)
	c.close()
	waitFor(t, func() bool { return s.Users() == 0 })
	tests := []struct {
		name                string
		at                  time.Time
		kept, empty, theirs bool
	}{
		{"now", time.Now(), true, false, true},
		{"after a day", time.Now().Add(25 * time.Hour), true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.hub.mu.Lock()
			if tc.at.After(time.Now()) {
				for _, tp := range s.hub.topics {
					for len(tp.fifo) > 0 {
						s.hub.evictLocked(tp)
					}
				}
			}
			s.hub.forgetLocked(tc.at)
			_, kept := s.hub.topics["kept"]
			_, empty := s.hub.topics["empty"]
			_, theirs := s.hub.topics["theirs"]
			s.hub.mu.Unlock()
			if kept != tc.kept || empty != tc.empty || theirs != tc.theirs {
				t.Errorf("kept=%v empty=%v theirs=%v, want %v %v %v", kept, empty, theirs, tc.kept, tc.empty, tc.theirs)
			}
		})
	}
}

// TestKeyRetriedWhileApart: a publisher's retry with the same
// Idempotency-Key lands on a node that has not heard of the first copy (cut
// off, or frozen with the request in its socket, as in the testbed's hang
// scenario), so the message exists under two ids. Once the copies meet,
// every stream shows it once, and so does a client that saw one copy on
// one node and resumes on another.
func TestKeyRetriedWhileApart(t *testing.T) {
	f := newMemFarm("a", "b", "c")
	nodes := startNodes(t, f, nil, "a", "b", "c")
	streams := map[string]*sseClient{}
	for _, n := range []string{"a", "b", "c"} {
		streams[n] = openStream(t, nil, streamURL(nodes[n], "t"), "")
	}
	waitFor(t, func() bool { return nodes["a"].s.Users()+nodes["b"].s.Users()+nodes["c"].s.Users() == 3 })
	for _, p := range [][2]string{{"a", "b"}, {"b", "a"}, {"a", "c"}, {"c", "a"}} {
		f.setCut(p[0], p[1], true)
	}
	for _, n := range []string{"a", "b"} { // the first copy's answer got lost: retried on b
		if code, body := publish(t, nodes[n].url, "t", "x", "Idempotency-Key", "k-x"); code != 200 {
			t.Fatalf("publish on %s: %d %s", n, code, body)
		}
	}
	afterX := map[string]string{} // node → its client's id once it saw x
	for n, c := range streams {
		if ev := c.next(t); ev.Data != "x" {
			t.Fatalf("%s: first event %+v", n, ev)
		}
		afterX[n] = c.lastID
	}
	for _, p := range [][2]string{{"a", "b"}, {"b", "a"}, {"a", "c"}, {"c", "a"}} {
		f.setCut(p[0], p[1], false)
	}
	// The next messages of each origin show the others the gap, which
	// they fill with the other copy of x.
	mustPublish(t, nodes["a"].url, "t", "y")
	mustPublish(t, nodes["b"].url, "t", "z")
	for n, c := range streams {
		got := c.data(t, 2)
		sort.Strings(got)
		if strings.Join(got, ",") != "y,z" {
			t.Errorf("%s: after x: %v", n, got)
		}
		c.expectNothing(t, 200*time.Millisecond)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"a to b", "a", "b"},
		{"a to c", "a", "c"},
		{"b to a", "b", "a"},
		{"c to a", "c", "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := openStream(t, nil, streamURL(nodes[tc.to], "t"), afterX[tc.from])
			got := c.data(t, 2)
			sort.Strings(got)
			if strings.Join(got, ",") != "y,z" {
				t.Errorf("resumed after x: %v", got)
			}
			c.expectNothing(t, 200*time.Millisecond)
		})
	}
}

// TestNewClientSeesLiveMessageFromSkewedOrigin: a new client on b, then a
// publish on a whose clock is behind b's (two machines, or two guests
// under emulation): the message came live, after the client did, so the
// client gets it whatever the origin's clock says. (The appliance's
// two-guest test caught this.)
func TestNewClientSeesLiveMessageFromSkewedOrigin(t *testing.T) {
	f := newMemFarm("a", "b")
	nodes := startNodes(t, f, func(c *Config) {
		if c.Mesh.(*memMesh).self == "a" {
			c.skew = -5 * time.Second
		}
	}, "a", "b")
	c := openStream(t, nil, streamURL(nodes["b"], "skew"), "")
	mustPublish(t, nodes["a"].url, "skew", "from a slow clock")
	if ev := c.next(t); ev.Data != "from a slow clock" {
		t.Fatalf("%+v", ev)
	}
}

// TestNewClientSeesGapFilledFromSkewedOrigin: a message lost on the way
// to b and filled in when the next one shows the gap is news too, not
// history b catches up on: a new client on b gets both, though the
// origin's clock is behind b's. (Found in review.)
func TestNewClientSeesGapFilledFromSkewedOrigin(t *testing.T) {
	for _, skew := range []time.Duration{0, -5 * time.Second} {
		t.Run(skew.String(), func(t *testing.T) {
			f := newMemFarm("a", "b")
			nodes := startNodes(t, f, func(c *Config) {
				if c.Mesh.(*memMesh).self == "a" {
					c.skew = skew
				}
			}, "a", "b")
			settle(t, nodes["a"], nodes["b"])
			c := openStream(t, nil, streamURL(nodes["b"], "g"), "")
			waitFor(t, func() bool { return nodes["b"].s.Users() == 1 })
			f.setCut("a", "b", true)
			mustPublish(t, nodes["a"].url, "g", "m1")
			f.setCut("a", "b", false)
			mustPublish(t, nodes["a"].url, "g", "m2")
			got := c.data(t, 2)
			if strings.Join(got, ",") != "m1,m2" {
				t.Fatalf("got %v, want m1,m2", got)
			}
		})
	}
}

// settle waits until the start-up exchange between two nodes is over: a
// publish is answered once the other node took it in, and each pair's
// frames go in order, so once one publish each way is answered, a's
// answer to b's sync (what a holds) has reached b. Otherwise a sync
// answered late may describe a message published since as history to
// catch up on.
func settle(t *testing.T, a, b *testNode) {
	t.Helper()
	mustPublish(t, b.url, "settle", "b")
	mustPublish(t, a.url, "settle", "a")
}

// TestNewsFromPeerNotYetUp: a restarted node can hear a peer's news of what
// it holds before its table shows that peer UP (the mesh link is up, the
// peer's status record not in yet). The peer that spoke is asked for the
// range, which is not given up as a gap nobody holds: the node's clients
// get the messages, with no reset.
func TestNewsFromPeerNotYetUp(t *testing.T) {
	f := newMemFarm("a", "b") // b stays DOWN in a's table throughout
	s := startNodes(t, f, nil, "a")["a"].s
	c := openStream(t, nil, streamURL(&testNode{url: "http://" + s.Addr().String()}, "t"), "")
	waitFor(t, func() bool { return s.Users() == 1 })

	if err := s.HandlePeer("b", encodeHaves([]have{{Topic: "t", Origin: "b", Epoch: 7, Base: 1, Head: 3}})); err != nil {
		t.Fatal(err)
	}
	if n := testutilCounter(t, s, "farmlb_pushd_gaps_lost_total"); n != 0 {
		t.Fatalf("gaps_lost_total = %v: the range b just told of was given up", n)
	}
	if n := testutilCounter(t, s, "farmlb_pushd_fill_requests_total"); n != 1 {
		t.Errorf("fill_requests_total = %v, want 1 (b asked)", n)
	}
	var ms []*message
	for seq := uint64(1); seq <= 3; seq++ {
		ms = append(ms, &message{Topic: "t", Origin: "b", Epoch: 7, Seq: seq, At: time.Now(), Data: []byte(fmt.Sprint(seq))})
	}
	if err := s.HandlePeer("b", encodeMessages(ms)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range c.collect(t, 3) {
		got = append(got, ev.Event+":"+ev.Data)
	}
	if strings.Join(got, ",") != "t:1,t:2,t:3" {
		t.Errorf("got %v, want t:1,t:2,t:3", got)
	}
}

// TestPublishRetriedAfterUnreachablePeerReturns: two nodes (and, in the
// real farm, dnsd observers that vouch for each): a's link to b is cut
// while the table shows b UP, so a's publish reaches no second node and
// is answered 503. Once the link is back, the publisher retries with the
// same Idempotency-Key, as the answer asks, and is told the message is
// taken: it must then reach the clients of both nodes, though nothing
// else is published on the topic.
func TestPublishRetriedAfterUnreachablePeerReturns(t *testing.T) {
	f := newMemFarm("a", "b")
	nodes := startNodes(t, f, nil, "a", "b")
	settle(t, nodes["a"], nodes["b"])
	streams := map[string]*sseClient{}
	for _, n := range []string{"a", "b"} {
		streams[n] = openStream(t, nil, streamURL(nodes[n], "t"), "")
	}
	waitFor(t, func() bool { return nodes["a"].s.Users()+nodes["b"].s.Users() == 2 })

	f.setUnreachable("a", "b", true)
	if code, body := publish(t, nodes["a"].url, "t", "m1", "Idempotency-Key", "k1"); code != http.StatusServiceUnavailable {
		t.Fatalf("publish while b is unreachable: %d %s, want 503", code, body)
	}
	f.setUnreachable("a", "b", false)
	if code, body := publish(t, nodes["a"].url, "t", "m1", "Idempotency-Key", "k1"); code != 200 {
		t.Fatalf("publish retried once the link is back: %d %s", code, body)
	}
	for n, c := range streams {
		if ev := c.next(t); ev.Data != "m1" {
			t.Errorf("%s: got %+v, want m1", n, ev)
		}
	}
}

// TestKeyRetryWaitsForSecondCopy: a publish that no second node took
// (a's link to b cut, b UP in the table) is answered 503; the publisher's
// retry with the same Idempotency-Key on the same node must not be told
// 200 while the message is still on a alone (a could die with it), nor
// wait longer than a publish: 503 again, then 200 once b holds it.
func TestKeyRetryWaitsForSecondCopy(t *testing.T) {
	f := newMemFarm("a", "b")
	nodes := startNodes(t, f, func(c *Config) { c.PublishTimeout = 500 * time.Millisecond }, "a", "b")
	settle(t, nodes["a"], nodes["b"])
	f.setUnreachable("a", "b", true)
	for try := range 2 {
		if code, body := publish(t, nodes["a"].url, "t", "m1", "Idempotency-Key", "k1"); code != http.StatusServiceUnavailable {
			t.Fatalf("try %d while b is unreachable: %d %s, want 503", try, code, body)
		}
	}
	f.setUnreachable("a", "b", false)
	waitFor(t, func() bool {
		code, _ := publish(t, nodes["a"].url, "t", "m1", "Idempotency-Key", "k1")
		return code == 200
	})
}

// TestQuickRestartUnseen: b publishes a message that reaches a but not
// c, and restarts so quickly that no table watcher sees it DOWN (the
// mesh shows a restarted peer DOWN only until its first status record
// of the new life comes in). Nobody then tells c what a holds of b's
// former life, as a DOWN would have had them do; the restarted b's sync
// must: c's client gets the message though nothing more is published.
func TestQuickRestartUnseen(t *testing.T) {
	f := newMemFarm("a", "b", "c")
	nodes := startNodes(t, f, nil, "a", "b", "c")
	c := openStream(t, nil, streamURL(nodes["c"], "t"), "")
	waitFor(t, func() bool { return nodes["c"].s.Users() == 1 })
	f.setCut("b", "c", true)
	mustPublish(t, nodes["b"].url, "t", "x")

	f.mu.Lock() // the watchers of a and c miss b's restart
	watchers := f.subs
	f.subs = map[chan struct{}]bool{}
	f.mu.Unlock()
	nodes["b"].stop()
	f.setCut("b", "c", false)
	startNodes(t, f, nil, "b")
	f.mu.Lock()
	for ch := range watchers {
		f.subs[ch] = true
	}
	f.mu.Unlock()

	if ev := c.next(t); ev.Data != "x" {
		t.Fatalf("got %+v, want x", ev)
	}
}
