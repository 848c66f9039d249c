package webclient_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmlb/farmlb/internal/farmtest"
)

// front is the farm's service address as a client sees it: each connection
// goes to the first node, in order, that accepts it — as an address that
// moves to another node when its node dies would. It lets a stock
// EventSource, which always reconnects to the same URL, land on another
// node with its Last-Event-ID.
type front struct {
	l        net.Listener
	backends []string
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]bool
}

func startFront(t *testing.T, backends ...string) *front {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(farmtest.IP(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	fr := &front{l: l, backends: backends, conns: map[net.Conn]bool{}}
	fr.wg.Add(1)
	go fr.serve()
	t.Cleanup(func() {
		l.Close()
		fr.mu.Lock()
		for c := range fr.conns {
			c.Close()
		}
		fr.mu.Unlock()
		fr.wg.Wait()
	})
	return fr
}

// route sets the nodes new connections go to (none: each is closed at once,
// a network error to the client).
func (fr *front) route(backends ...string) {
	fr.mu.Lock()
	fr.backends = backends
	fr.mu.Unlock()
}

func (fr *front) URL() string { return "http://" + fr.l.Addr().String() }

func (fr *front) track(c net.Conn, on bool) bool {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if fr.conns == nil {
		return false
	}
	if on {
		fr.conns[c] = true
	} else {
		delete(fr.conns, c)
	}
	return true
}

func (fr *front) serve() {
	defer fr.wg.Done()
	for {
		c, err := fr.l.Accept()
		if err != nil {
			return
		}
		fr.wg.Add(1)
		go func() {
			defer fr.wg.Done()
			defer c.Close()
			var b net.Conn
			fr.mu.Lock()
			backends := fr.backends
			fr.mu.Unlock()
			for _, addr := range backends {
				if b, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
					break
				}
			}
			if b == nil {
				return
			}
			defer b.Close()
			fr.track(c, true)
			fr.track(b, true)
			defer fr.track(c, false)
			defer fr.track(b, false)
			done := make(chan struct{}, 2)
			go func() { io.Copy(b, c); done <- struct{}{} }()
			go func() { io.Copy(c, b); done <- struct{}{} }()
			<-done // either side ended: end both
			c.Close()
			b.Close()
			<-done
		}()
	}
}

// envelope is the data of an unnamed event.
type envelope struct {
	Topic string  `json:"topic"`
	Data  *string `json:"data"`
	Reset bool    `json:"reset"`
}

type stockEvent struct {
	Kind, ID, Data, Event, Message string
}

// nodeES runs the npm eventsource package (e2e/stock.mjs) on url.
type nodeES struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	events []stockEvent
}

func startNodeES(t *testing.T, url, lastID string, named ...string) *nodeES {
	t.Helper()
	cmd := exec.Command("node", append([]string{"e2e/stock.mjs", url, lastID}, named...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &nodeES{cmd: cmd}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev stockEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				n.mu.Lock()
				n.events = append(n.events, ev)
				n.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-done; cmd.Wait() })
	return n
}

func (n *nodeES) kind(k string) []stockEvent {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []stockEvent
	for _, ev := range n.events {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// messages decodes the envelopes of the onmessage events as "topic:data".
func messages(t *testing.T, evs []stockEvent) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		var env envelope
		if err := json.Unmarshal([]byte(ev.Data), &env); err != nil || env.Topic == "" || env.Data == nil {
			t.Fatalf("onmessage got %q: not a {topic, data} envelope (%v)", ev.Data, err)
		}
		out = append(out, env.Topic+":"+*env.Data)
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStockEventSource streams from a real farm with clients that know
// nothing of farmlb — Chromium's EventSource and the npm eventsource
// package — through one service address: onmessage gets every message of
// every topic with the topic in its JSON data, addEventListener(topic) gets
// the payload with ?event=topic, and when the node they stream from is
// killed, each one's own reconnect (Last-Event-ID) lands on the other node
// and gets exactly what it missed. A second npm client resumes on the other
// node directly from an id in the middle, with a Last-Event-ID header.
func TestStockEventSource(t *testing.T) {
	chromium := needBrowser(t, "eventsource")
	f := farmtest.Start(t, farmtest.Options{Nodes: []farmtest.NodeSpec{{Name: "serverA"}, {Name: "serverB"}}})
	f.WaitUp(15 * time.Second)
	host := func(u string) string { return strings.TrimPrefix(u, "http://") }
	fr := startFront(t, host(f.URL("serverA")), host(f.URL("serverB")))
	streamURL := fr.URL() + "/stream?topic=news&topic=prices"

	d := startDriver(t, chromium)
	d.do(t, map[string]any{"op": "open", "url": fr.URL() + "/healthz"})
	d.do(t, map[string]any{"op": "eval", "js": `(() => {
		window.got = []; window.named = []; window.opens = 0;
		const es = new EventSource(` + jsString(streamURL) + `);
		es.onopen = () => window.opens++;
		es.onmessage = (e) => window.got.push({id: e.lastEventId, data: e.data});
		const named = new EventSource(` + jsString(streamURL+"&event=topic") + `);
		named.addEventListener("news", (e) => window.named.push("news:" + e.data));
		named.addEventListener("prices", (e) => window.named.push("prices:" + e.data));
		named.onmessage = (e) => window.named.push("onmessage:" + e.data);
		return true;
	})()`})
	browser := func(v string) []stockEvent {
		var evs []stockEvent
		raw := d.do(t, map[string]any{"op": "eval", "js": v})
		if v == "window.named" {
			var s []string
			json.Unmarshal(raw, &s)
			for _, x := range s {
				evs = append(evs, stockEvent{Data: x})
			}
			return evs
		}
		if err := json.Unmarshal(raw, &evs); err != nil {
			t.Fatalf("%s: %s: %v", v, raw, err)
		}
		return evs
	}
	node := startNodeES(t, streamURL, "", "news")
	waitFor(t, "open streams", 20*time.Second, func() bool {
		var opens int
		json.Unmarshal(d.do(t, map[string]any{"op": "eval", "js": "window.opens"}), &opens)
		return opens == 1 && len(node.kind("open")) == 1 && streams(t, f.URL("serverA")) == 3
	})

	ctx := context.Background()
	published := 0
	publish := func(node, topic, data string) {
		t.Helper()
		published++
		key := fmt.Sprintf("stock-%d", published)
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := f.PublishKey(ctx, node, topic, data, key)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %s %s: %v", topic, data, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	payloads := []struct{ topic, data string }{
		{"news", "one"}, {"prices", `{"EURUSD":1.0842}`}, {"news", "two\nlines"}, {"news", `"quoted" <b>&</b>`},
	}
	var want []string
	for _, p := range payloads {
		publish("serverB", p.topic, p.data)
		want = append(want, p.topic+":"+p.data)
	}
	waitFor(t, "the first four messages", 20*time.Second, func() bool {
		return len(browser("window.got")) >= 4 && len(node.kind("message")) >= 4 && len(browser("window.named")) >= 4
	})
	if got := messages(t, browser("window.got")); !equal(got, want) {
		t.Fatalf("Chromium onmessage got %q, want %q", got, want)
	}
	if got := messages(t, node.kind("message")); !equal(got, want) {
		t.Fatalf("npm eventsource onmessage got %q, want %q", got, want)
	}
	if got := dataOf(browser("window.named")); !equal(got, want) {
		t.Fatalf("Chromium addEventListener(topic) with ?event=topic got %q, want %q", got, want)
	}
	if len(node.kind("named")) != 0 {
		t.Fatalf("npm eventsource: addEventListener(news) fired on the default stream: %+v", node.kind("named"))
	}
	firstID := node.kind("message")[0].ID

	// The node they stream from dies, and the service address leads
	// nowhere for a while; what is published meanwhile reaches them through
	// their own reconnect (Last-Event-ID), on serverB, once each.
	fr.route()
	f.Kill("serverA")
	for _, p := range []struct{ topic, data string }{{"news", "three"}, {"prices", `{"EURUSD":1.0843}`}, {"news", "four"}} {
		publish("serverB", p.topic, p.data)
		want = append(want, p.topic+":"+p.data)
	}
	if n := len(node.kind("message")); n != 4 {
		t.Fatalf("npm eventsource got %d messages while cut off, want 4", n)
	}
	fr.route(host(f.URL("serverB")))
	waitFor(t, "the messages published after the kill", 30*time.Second, func() bool {
		return len(browser("window.got")) >= 7 && len(node.kind("message")) >= 7
	})
	// Anything more (a duplicate) would have come with them.
	time.Sleep(500 * time.Millisecond)
	if got := messages(t, browser("window.got")); !equal(got, want) {
		t.Fatalf("Chromium after its reconnect got %q, want %q", got, want)
	}
	if got := messages(t, node.kind("message")); !equal(got, want) {
		t.Fatalf("npm eventsource after its reconnect got %q, want %q", got, want)
	}
	if n := streams(t, f.URL("serverB")); n < 2 {
		t.Fatalf("serverB counts %d streams; the clients did not move there", n)
	}

	// Resume on another node from an id in the middle, by header.
	late := startNodeES(t, f.URL("serverB")+"/stream?topic=news&topic=prices", firstID)
	waitFor(t, "the resumed stream's replay", 20*time.Second, func() bool { return len(late.kind("message")) >= 6 })
	time.Sleep(300 * time.Millisecond)
	if got := messages(t, late.kind("message")); !equal(got, want[1:]) {
		t.Fatalf("npm eventsource resumed on serverB after %s got %q, want %q", firstID, got, want[1:])
	}
}

// streams is the number of open streams a node reports on /healthz.
func streams(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var h struct{ Streams int }
	json.NewDecoder(resp.Body).Decode(&h)
	return h.Streams
}

func dataOf(evs []stockEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Data)
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
