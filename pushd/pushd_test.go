package pushd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/internal/farmtest"
	"go.uber.org/goleak"
)

// leakChecked remembers the tests checkLeaks already watches.
var leakChecked = struct {
	sync.Mutex
	tests map[*testing.T]bool
}{tests: map[*testing.T]bool{}}

// TestMain removes the binaries the process tests built. Goroutine leaks
// are checked per test, after its nodes stopped (checkLeaks).
func TestMain(m *testing.M) { farmtest.Main(m) }

// checkLeaks fails the test if, once its cleanups have run, goroutines
// remain that were not there when it was called. Call it first, so that its
// cleanup runs last.
func checkLeaks(t *testing.T) {
	t.Helper()
	leakChecked.Lock()
	done := leakChecked.tests[t]
	leakChecked.tests[t] = true
	leakChecked.Unlock()
	if done { // once per test: the first call's cleanup runs last
		return
	}
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, ignore,
			// Idle keep-alive connections of the test's HTTP clients.
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
	})
}

func streamURL(n *testNode, topics ...string) string {
	q := make([]string, len(topics))
	for i, t := range topics {
		q[i] = "topic=" + t
	}
	return n.url + "/stream?" + strings.Join(q, "&")
}

func TestPublishReachesEveryNode(t *testing.T) {
	f := newMemFarm("a", "b", "c")
	nodes := startNodes(t, f, nil, "a", "b", "c")
	var clients []*sseClient
	for _, name := range []string{"a", "b", "c"} {
		c := openStream(t, nil, streamURL(nodes[name], "prices"), "")
		if got := c.resp.Header.Get("Farmlb-Node"); got != name {
			t.Errorf("Farmlb-Node = %q, want %q", got, name)
		}
		clients = append(clients, c)
	}
	if !(nodes["a"].s.Users() == 1 && nodes["c"].s.Users() == 1) {
		t.Fatal("streams not counted once their headers arrived: nodes[\"a\"].s.Users() == 1 && nodes[\"c\"].s.Users() == 1")
	}
	mustPublish(t, nodes["a"].url, "prices", "one")
	mustPublish(t, nodes["b"].url, "prices", "two\nlines")
	mustPublish(t, nodes["c"].url, "other", "not subscribed")
	mustPublish(t, nodes["c"].url, "prices", "three")
	for i, c := range clients {
		got := map[string]bool{}
		for _, ev := range c.collect(t, 3) {
			if ev.Event != "prices" {
				t.Errorf("client %d: event %q", i, ev.Event)
			}
			got[ev.Data] = true
		}
		for _, want := range []string{"one", "two\nlines", "three"} {
			if !got[want] {
				t.Errorf("client %d: missing %q (got %v)", i, want, got)
			}
		}
		c.expectNothing(t, 100*time.Millisecond)
	}
}

// TestEventNaming: by default every message is an unnamed event (a stock
// EventSource's onmessage gets it) whose data is {"topic","data"}; with
// ?event=topic the same message is an event named by its topic with the
// payload as data. The ids are cursors in both, so a client can resume one
// form with an id of the other.
func TestEventNaming(t *testing.T) {
	f := newMemFarm("a", "b")
	nodes := startNodes(t, f, nil, "a", "b")
	raw := func(url string) *sseClient {
		c, resp, err := tryStreamRaw(nil, url, "", true)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", url, resp, err)
		}
		t.Cleanup(c.close)
		return c
	}
	var firstNamed string
	plain := raw(streamURL(nodes["a"], "prices", "news") + "&event=message")
	def := raw(streamURL(nodes["a"], "prices", "news"))
	named := raw(streamURL(nodes["a"], "prices", "news") + "&event=topic")
	mustPublish(t, nodes["b"].url, "news", "two\nlines \"quoted\"")
	mustPublish(t, nodes["b"].url, "prices", `{"bid":1.0842}`)
	rawNext := func(c *sseClient) event {
		t.Helper()
		for {
			select {
			case ev := <-c.events:
				if ev.Data != "" {
					return ev
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no event in 10s")
			}
		}
	}
	for _, want := range []struct{ topic, data, envelope string }{
		{"news", "two\nlines \"quoted\"", `{"topic":"news","data":"two\nlines \"quoted\""}`},
		{"prices", `{"bid":1.0842}`, `{"topic":"prices","data":"{\"bid\":1.0842}"}`},
	} {
		p, d, n := rawNext(plain), rawNext(def), rawNext(named)
		if p.Event != "" || p.Data != want.envelope || d != p {
			t.Errorf("default stream: event %q data %s (event=message: %+v), want unnamed %s", d.Event, d.Data, p, want.envelope)
		}
		if n.Event != want.topic || n.Data != want.data {
			t.Errorf("event=topic stream: event %q data %q, want %q %q", n.Event, n.Data, want.topic, want.data)
		}
		if want.topic == "news" {
			firstNamed = n.ID
		}
	}
	// An id of one form resumes a stream of the other.
	res := raw(streamURL(nodes["b"], "prices", "news") + "&cursor=" + firstNamed)
	if ev := rawNext(res); ev.Event != "" || ev.Data != `{"topic":"prices","data":"{\"bid\":1.0842}"}` {
		t.Errorf("default stream resumed on b from the event=topic id of the first message: %+v, want the second", ev)
	}
}

// TestResumeOnAnotherNode: a client reads part of a topic from one node,
// goes away, and resumes from its last id on another node: it gets exactly
// what was published meanwhile, each publisher's order kept.
func TestResumeOnAnotherNode(t *testing.T) {
	f := newMemFarm("a", "b", "c")
	nodes := startNodes(t, f, nil, "a", "b", "c")
	c := openStream(t, nil, streamURL(nodes["a"], "x", "y"), "")
	if !(nodes["a"].s.Users() == 1) {
		t.Fatal("streams not counted once their headers arrived: nodes[\"a\"].s.Users() == 1")
	}
	for i := 1; i <= 3; i++ {
		mustPublish(t, nodes["b"].url, "x", fmt.Sprint("b", i))
	}
	c.collect(t, 3)
	last := c.lastID
	c.close()
	for i := 4; i <= 8; i++ {
		mustPublish(t, nodes["b"].url, "x", fmt.Sprint("b", i))
		mustPublish(t, nodes["a"].url, "y", fmt.Sprint("a", i))
	}
	c2 := openStream(t, nil, streamURL(nodes["c"], "x", "y"), last)
	evs := c2.collect(t, 10)
	c2.expectNothing(t, 200*time.Millisecond)
	var bs, as []string
	for _, ev := range evs {
		switch ev.Event {
		case "x":
			bs = append(bs, ev.Data)
		case "y":
			as = append(as, ev.Data)
		}
	}
	if got := strings.Join(bs, ","); got != "b4,b5,b6,b7,b8" {
		t.Errorf("x after resume = %s", got)
	}
	if got := strings.Join(as, ","); got != "a4,a5,a6,a7,a8" {
		t.Errorf("y after resume = %s", got)
	}
	// And the id of the last event resumes with nothing more.
	c3 := openStream(t, nil, streamURL(nodes["b"], "x", "y"), c2.lastID)
	c3.expectNothing(t, 200*time.Millisecond)
}

func TestResetWhenHistoryIsGone(t *testing.T) {
	f := newMemFarm("a", "b")
	nodes := startNodes(t, f, func(c *Config) { c.HistorySize = 3 }, "a", "b")
	c := openStream(t, nil, streamURL(nodes["a"], "x"), "")
	if !(nodes["a"].s.Users() == 1) {
		t.Fatal("streams not counted once their headers arrived: nodes[\"a\"].s.Users() == 1")
	}
	mustPublish(t, nodes["a"].url, "x", "1")
	c.collect(t, 1)
	last := c.lastID
	c.close()
	for i := 2; i <= 10; i++ {
		mustPublish(t, nodes["a"].url, "x", fmt.Sprint(i))
	}
	c2 := openStream(t, nil, streamURL(nodes["b"], "x"), last)
	evs := c2.collect(t, 4)
	if evs[0].Event != "farmlb-reset" || !strings.Contains(evs[0].Data, `"topic":"x"`) {
		t.Fatalf("first event %+v, want farmlb-reset for x", evs[0])
	}
	var got []string
	for _, ev := range evs[1:] {
		got = append(got, ev.Data)
	}
	if strings.Join(got, ",") != "8,9,10" {
		t.Errorf("after reset got %v, want the 3 messages history holds", got)
	}
}

func TestBadCursorResets(t *testing.T) {
	f := newMemFarm("a")
	nodes := startNodes(t, f, nil, "a")
	c := openStream(t, nil, streamURL(nodes["a"], "x"), "not-a-cursor!")
	ev := c.next(t)
	if ev.Event != "farmlb-reset" {
		t.Fatalf("got %+v, want a reset", ev)
	}
	mustPublish(t, nodes["a"].url, "x", "live")
	if ev := c.next(t); ev.Data != "live" {
		t.Fatalf("got %+v", ev)
	}
}

func TestPublishRequests(t *testing.T) {
	f := newMemFarm("a")
	nodes := startNodes(t, f, func(c *Config) { c.MaxPayload = 16 }, "a")
	url := nodes["a"].url
	tests := []struct {
		name  string
		topic string
		body  string
		hdr   []string
		code  int
		want  string
	}{
		{"ok", "t", "hello", nil, 200, `"topic":"t"`},
		{"no token", "t", "x", []string{"Authorization", ""}, 401, "missing bearer token"},
		{"wrong token", "t", "x", []string{"Authorization", "Bearer nope"}, 403, "wrong token"},
		{"bad topic", "a%20b", "x", nil, 400, "invalid topic"},
		{"reserved topic", "farmlb-move", "x", nil, 400, "reserved"},
		{"long topic", strings.Repeat("t", 129), "x", nil, 400, "at most 128"},
		{"too large", "t", strings.Repeat("x", 17), nil, 413, "larger than 16"},
		{"not utf8", "t", "\xff\xfe", nil, 400, "UTF-8"},
		{"bad key", "t", "x", []string{"Idempotency-Key", "a b"}, 400, "Idempotency-Key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := publish(t, url, tc.topic, tc.body, tc.hdr...)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %s, want %d containing %q", code, body, tc.code, tc.want)
			}
		})
	}
	resp, err := http.Get(url + "/publish/t")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /publish: %d", resp.StatusCode)
	}
}

func TestIdempotencyKey(t *testing.T) {
	f := newMemFarm("a", "b")
	nodes := startNodes(t, f, nil, "a", "b")
	c := openStream(t, nil, streamURL(nodes["b"], "t"), "")
	if !(nodes["b"].s.Users() == 1) {
		t.Fatal("streams not counted once their headers arrived: nodes[\"b\"].s.Users() == 1")
	}
	var ids []string
	for _, n := range []string{"a", "a", "b"} { // the retry may land on another node
		code, body := publish(t, nodes[n].url, "t", "once", "Idempotency-Key", "k-1")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var r struct{ ID string }
		json.Unmarshal([]byte(body), &r)
		ids = append(ids, r.ID)
	}
	if ids[0] != ids[1] || ids[0] != ids[2] {
		t.Errorf("ids %v differ", ids)
	}
	c.collect(t, 1)
	c.expectNothing(t, 200*time.Millisecond)
}

func TestCapacity(t *testing.T) {
	f := newMemFarm("a", "b")
	nodes := startNodes(t, f, func(c *Config) { c.Capacity = 1 }, "a", "b")
	openStream(t, nil, streamURL(nodes["a"], "t"), "")
	_, resp, err := tryStream(nil, streamURL(nodes["a"], "t"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second stream: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, nodes["b"].url+"/stream?") {
		t.Errorf("Location %q, want node b", loc)
	}
	if !strings.Contains(string(body), `"try":"`+nodes["b"].url+`"`) {
		t.Errorf("body %s", body)
	}
}

func TestDrain(t *testing.T) {
	f := newMemFarm("a", "b")
	nodes := startNodes(t, f, nil, "a", "b")
	var cs []*sseClient
	for i := 0; i < 4; i++ {
		cs = append(cs, openStream(t, nil, streamURL(nodes["a"], "t"), ""))
	}
	if !(nodes["a"].s.Users() == 4) {
		t.Fatal("streams not counted once their headers arrived: nodes[\"a\"].s.Users() == 4")
	}
	admin := func(path string) int {
		req, _ := http.NewRequest("POST", nodes["a"].url+path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := admin("/admin/drain"); code != 200 {
		t.Fatalf("drain: %d", code)
	}
	if s, _ := nodes["a"].s.mesh.Table().Find("a"); s.Status != farm.StatusDraining {
		t.Errorf("status %v, want DRAINING", s.Status)
	}
	_, resp, _ := tryStream(nil, streamURL(nodes["a"], "t"), "")
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.HasPrefix(resp.Header.Get("Location"), nodes["b"].url) {
		t.Errorf("new stream while draining: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for i, c := range cs {
		ev := c.next(t)
		if ev.Event != "farmlb-move" || !strings.Contains(ev.Data, nodes["b"].url) {
			t.Errorf("client %d: %+v", i, ev)
		}
	}
	waitFor(t, func() bool { return nodes["a"].s.Users() == 0 })
	if code := admin("/admin/undrain"); code != 200 {
		t.Fatalf("undrain: %d", code)
	}
	openStream(t, nil, streamURL(nodes["a"], "t"), "")
}

func TestFarmEndpoint(t *testing.T) {
	f := newMemFarm("a", "b")
	nodes := startNodes(t, f, nil, "a", "b")
	tests := []struct {
		name, path, accept, ctype, want string
	}{
		{"json", "/farm", "", "application/json", `"name": "b"`},
		{"text by query", "/farm?format=text", "", "text/plain", " UP 0 A"},
		{"text by accept", "/farm", "text/plain", "text/plain", " UP 0 A"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", nodes["a"].url+tc.path, nil)
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.ctype) || !strings.Contains(string(b), tc.want) {
				t.Errorf("%s %s", resp.Header.Get("Content-Type"), b)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Error("no CORS header")
			}
			l, _, err := farm.Decode(b)
			if err != nil || len(l.Servers) != 2 || l.Reporter != "a" {
				t.Errorf("decode: %v %+v", err, l)
			}
		})
	}
}

func TestOtherEndpoints(t *testing.T) {
	f := newMemFarm("a")
	nodes := startNodes(t, f, nil, "a")
	tests := []struct {
		path string
		code int
		want string
	}{
		{"/healthz", 200, `"status":"UP"`},
		{"/metrics", 200, "farmlb_pushd_streams"},
		{"/", 200, "<title>farmlb"},
		{"/dashboard/app.js", 200, "farmlb.js"},
		{"/farmlb.js", 200, "export function subscribe"},
		{"/demo/", 200, "Live prices"},
		{"/stream", 400, "no topic"},
		{"/stream?topic=a%20b", 400, "invalid topic"},
		{"/stream?topic=a&event=name", 400, `event=\"name\": want event=message`},
		{"/nope", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(nodes["a"].url + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
				t.Errorf("%d %.200s", resp.StatusCode, b)
			}
		})
	}
}

// TestSlowClientDropped: a client that stops reading fills its socket; the
// node drops it after WriteTimeout, while the other clients keep getting
// every message.
func TestSlowClientDropped(t *testing.T) {
	f := newMemFarm("a")
	nodes := startNodes(t, f, func(c *Config) {
		c.WriteTimeout = 300 * time.Millisecond
		c.MaxPayload = 60 << 10
	}, "a")
	s := nodes["a"].s
	slow, err := net.Dial("tcp", strings.TrimPrefix(nodes["a"].url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(slow, "GET /stream?topic=t HTTP/1.1\r\nHost: x\r\n\r\n")
	fast := openStream(t, nil, streamURL(nodes["a"], "t"), "")
	// The slow client's request went first, but nothing says the node has
	// taken it yet (the fast one's headers were awaited, its were not).
	waitFor(t, func() bool { return s.Users() == 2 })
	big := strings.Repeat("x", 50<<10)
	for i := 0; s.Users() == 2; i++ {
		if i == 200 {
			t.Fatal("slow client still connected after 12 MB")
		}
		mustPublish(t, nodes["a"].url, "t", fmt.Sprint(i, big))
		if ev := fast.next(t); !strings.HasPrefix(ev.Data, fmt.Sprint(i)) {
			t.Fatalf("fast client got %.20q, want message %d", ev.Data, i)
		}
		if i > 20 {
			time.Sleep(20 * time.Millisecond) // give the write timeout room to fire
		}
	}
	if n := testutilCounter(t, s, "farmlb_pushd_dropped_slow_clients_total"); n != 1 {
		t.Errorf("dropped_slow_clients_total = %v, want 1", n)
	}
}

// testutilCounter reads one counter from the node's metrics.
func testutilCounter(t *testing.T, s *Server, name string) float64 {
	t.Helper()
	mfs, err := s.cfg.Gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestGoneClientNoticed: an idle HTTP/1.1 stream whose client closes the
// connection is noticed at once (the close poller), not at the next write.
func TestGoneClientNoticed(t *testing.T) {
	f := newMemFarm("a")
	nodes := startNodes(t, f, func(c *Config) { c.KeepAlive = time.Hour }, "a")
	c := openStream(t, nil, streamURL(nodes["a"], "t"), "")
	if n := nodes["a"].s.Users(); n != 1 {
		t.Fatalf("users %d", n)
	}
	c.close()
	waitFor(t, func() bool { return nodes["a"].s.Users() == 0 })
	if s, _ := nodes["a"].s.mesh.Table().Find("a"); s.Users != 0 {
		t.Errorf("the mesh still has %d users", s.Users)
	}
}

// TestKeepAlive: an idle stream gets a comment line every KeepAlive, over
// HTTP/1.1 as a proxy would see it.
func TestKeepAlive(t *testing.T) {
	f := newMemFarm("a")
	nodes := startNodes(t, f, func(c *Config) { c.KeepAlive = 50 * time.Millisecond }, "a")
	conn, err := net.Dial("tcp", strings.TrimPrefix(nodes["a"].url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /stream?topic=t HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	var lines []string
	for n := 0; n < 2; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", lines, err)
		}
		lines = append(lines, line)
		if line == ": keepalive\n" {
			n++
		}
	}
	if lines[0] != "HTTP/1.1 200 OK\r\n" {
		t.Errorf("status line %q", lines[0])
	}
}

// TestFanOutToManyStreams: a publish reaches every stream of a topic when
// they are more than one worker's chunk (the workers share them), with
// streams on two topics getting both topics' messages in the order this
// node delivered them.
func TestFanOutToManyStreams(t *testing.T) {
	f := newMemFarm("a")
	nodes := startNodes(t, f, nil, "a")
	const n = 3*wakeChunk + 7
	var one, two []*sseClient
	for i := range n {
		if i%5 == 0 {
			two = append(two, openStream(t, nil, streamURL(nodes["a"], "x", "y"), ""))
		} else {
			one = append(one, openStream(t, nil, streamURL(nodes["a"], "x"), ""))
		}
	}
	waitFor(t, func() bool { return nodes["a"].s.Users() == n })
	for i := range 3 {
		mustPublish(t, nodes["a"].url, "x", fmt.Sprint("x", i))
		mustPublish(t, nodes["a"].url, "y", fmt.Sprint("y", i))
	}
	for _, c := range one {
		got := c.data(t, 3)
		if strings.Join(got, ",") != "x0,x1,x2" {
			t.Fatalf("one topic: got %v", got)
		}
	}
	for _, c := range two {
		got := c.data(t, 6)
		if strings.Join(got, ",") != "x0,y0,x1,y1,x2,y2" {
			t.Fatalf("two topics: got %v", got)
		}
	}
}

// TestReplayOrderAcrossTopics: a stream on two topics that resumes gets
// what it missed in the order the node delivered it, across the topics.
// (Found in review: the order was counted per topic.)
func TestReplayOrderAcrossTopics(t *testing.T) {
	f := newMemFarm("a")
	nodes := startNodes(t, f, nil, "a")
	seed := openStream(t, nil, streamURL(nodes["a"], "x", "y"), "")
	mustPublish(t, nodes["a"].url, "x", "sx")
	mustPublish(t, nodes["a"].url, "y", "sy")
	seed.collect(t, 2)
	id := seed.lastID
	seed.close()
	for _, p := range [][2]string{{"y", "y0"}, {"x", "x0"}, {"y", "y1"}, {"x", "x1"}} {
		mustPublish(t, nodes["a"].url, p[0], p[1])
	}
	c := openStream(t, nil, streamURL(nodes["a"], "x", "y"), id)
	got := c.data(t, 4)
	if strings.Join(got, ",") != "y0,x0,y1,x1" {
		t.Fatalf("resumed replay: got %v, want y0,x0,y1,x1 (the order published)", got)
	}
}

// TestWakeQueueStaysSmall: publishes faster than the flush workers write
// queue each chunk of a topic's streams once, not once per publish (a
// woken stream pulls everything new). (Found in review: the queue grew
// as publishes × streams.)
func TestWakeQueueStaysSmall(t *testing.T) {
	q := &flushQueue{wake: make(chan struct{}, 1)}
	tp := &topic{subs: map[*stream]struct{}{}, q: q}
	for range 10 * wakeChunk {
		tp.subscribeLocked(&stream{closed: true})
	}
	for range 10000 { // 10,000 publishes while no worker runs
		tp.wakeLocked()
	}
	if n := len(q.chunks); n != 10 {
		t.Fatalf("%d chunks queued for one topic of %d streams, want 10", n, len(tp.subs))
	}
	// A chunk a worker took can be queued again: no wake is lost.
	done := make(chan struct{})
	_, wake, ok := q.pop(done, make([]*stream, 32))
	if !ok || len(wake) != wakeChunk {
		t.Fatalf("pop: %d streams, %v", len(wake), ok)
	}
	tp.wakeLocked()
	if n := len(q.chunks); n != 10 {
		t.Fatalf("after a pop and a publish: %d chunks queued, want 10", n)
	}
	// A stream comes (a new snapshot): what is queued of the old one
	// goes, the new one's 11 chunks come.
	tp.subscribeLocked(&stream{closed: true})
	for range 100 {
		tp.wakeLocked()
	}
	if n := len(q.chunks); n != 11 {
		t.Fatalf("after a new subscriber: %d chunks queued, want 11", n)
	}
}
