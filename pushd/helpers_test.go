package pushd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
)

const testToken = "t0ken"

// testNode is one pushd node started for a test on its own 127.0.0.x.
type testNode struct {
	s    *Server
	url  string
	stop func()
}

// startNodes starts one node per name on 127.0.0.(10+i), joined by f.
func startNodes(t *testing.T, f *memFarm, mod func(*Config), names ...string) map[string]*testNode {
	t.Helper()
	checkLeaks(t)
	out := map[string]*testNode{}
	for i, name := range names {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", 10+i))
		if err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.Mesh = f.mesh(name)
		cfg.Listener = ln
		cfg.PublishToken = testToken
		cfg.DrainWindow = 200 * time.Millisecond
		cfg.MoveGrace = 100 * time.Millisecond
		cfg.PublishTimeout = 2 * time.Second
		if mod != nil {
			mod(&cfg)
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.urls[name] = "http://" + s.Addr().String()
		f.handle[name] = s.HandlePeer
		f.mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		n := &testNode{s: s, url: "http://" + s.Addr().String()}
		n.stop = func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: Serve: %v", name, err)
			}
			f.mu.Lock()
			delete(f.handle, name)
			f.status[name] = farm.StatusDown
			f.changed()
			f.mu.Unlock()
		}
		stopped := false
		t.Cleanup(func() {
			if !stopped {
				n.stop()
			}
		})
		orig := n.stop
		n.stop = func() { stopped = true; orig() }
		out[name] = n
	}
	// Serve marks each node UP; wait for the table to say so.
	ch, cancel := f.mesh("").Subscribe()
	defer cancel()
	deadline := time.After(10 * time.Second)
	for !allUp(f.mesh("").Table(), names) {
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("nodes not UP in 10s")
		}
	}
	return out
}

// waitFor polls cond, a condition the server has no notification for
// (a stream's end noticed by the server); it fails the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type event struct {
	ID, Event, Data string
	HasID           bool
}

// sseClient reads a stream's events in a goroutine the test owns.
type sseClient struct {
	resp   *http.Response
	events chan event
	done   chan struct{}
	lastID string
	raw    bool // events as sent: unnamed ones not unwrapped
}

// h2cClient is a client that speaks HTTP/2 without TLS (h2c); its idle
// connections are closed when the test ends.
func h2cClient(t *testing.T) *http.Client {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func openStream(t *testing.T, client *http.Client, url string, lastID string) *sseClient {
	t.Helper()
	c, resp, err := tryStream(client, url, lastID)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	t.Cleanup(c.close)
	return c
}

func tryStream(client *http.Client, url string, lastID string) (*sseClient, *http.Response, error) {
	return tryStreamRaw(client, url, lastID, false)
}

func tryStreamRaw(client *http.Client, url string, lastID string, raw bool) (*sseClient, *http.Response, error) {
	if client == nil {
		client = &http.Client{}
	}
	req, _ := http.NewRequest("GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != 200 {
		return nil, resp, nil
	}
	c := &sseClient{resp: resp, events: make(chan event, 10000), done: make(chan struct{}), lastID: lastID, raw: raw}
	go c.read()
	return c, resp, nil
}

func (c *sseClient) read() {
	defer close(c.done)
	defer close(c.events)
	br := bufio.NewReader(c.resp.Body)
	var ev event
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if ev.HasID || ev.Event != "" || data != nil {
				ev.Data = strings.Join(data, "\n")
				c.unwrap(&ev)
				c.events <- ev
			}
			ev, data = event{}, nil
		case strings.HasPrefix(line, ":"):
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				ev.ID, ev.HasID = v, true
			case "event":
				ev.Event = v
			case "data":
				data = append(data, v)
			}
		}
	}
}

// unwrap reads an unnamed event (the default, ?event=message) as the
// tests expect every event: a message as Event = topic, Data = payload; a
// reset as Event = "farmlb-reset" with its JSON as data.
func (c *sseClient) unwrap(ev *event) {
	if c.raw || ev.Event != "" || ev.Data == "" {
		return
	}
	var env struct {
		Topic string  `json:"topic"`
		Data  *string `json:"data"`
		Reset bool    `json:"reset"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &env); err != nil || env.Topic == "" {
		ev.Event = "not-an-envelope"
		return
	}
	switch {
	case env.Reset:
		ev.Event = "farmlb-reset"
	case env.Data != nil:
		ev.Event, ev.Data = env.Topic, *env.Data
	default:
		ev.Event = "not-an-envelope"
	}
}

func (c *sseClient) close() {
	c.resp.Body.Close()
	<-c.done
}

// next returns the next event that carries data (a topic event, reset or
// move), remembering the last id as EventSource does.
func (c *sseClient) next(t *testing.T) event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.HasID {
				c.lastID = ev.ID
			}
			if ev.Event == "" && ev.Data == "" {
				continue // the opening id
			}
			return ev
		case <-timeout:
			t.Fatal("no event in 10s")
		}
	}
}

// collect reads n data events.
func (c *sseClient) collect(t *testing.T, n int) []event {
	t.Helper()
	var out []event
	for len(out) < n {
		out = append(out, c.next(t))
	}
	return out
}

// data returns the data of the next n events.
func (c *sseClient) data(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for _, ev := range c.collect(t, n) {
		out = append(out, ev.Data)
	}
	return out
}

// expectNothing checks that no data event arrives within d.
func (c *sseClient) expectNothing(t *testing.T, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return
			}
			if ev.HasID {
				c.lastID = ev.ID
			}
			if ev.Event != "" || ev.Data != "" {
				t.Fatalf("unexpected event %+v", ev)
			}
		case <-timeout:
			return
		}
	}
}

// publish posts one message and returns the status code and body.
func publish(t *testing.T, url, topic, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/publish/"+topic, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustPublish(t *testing.T, url, topic, body string) {
	t.Helper()
	if code, b := publish(t, url, topic, body); code != 200 {
		t.Fatalf("publish %s to %s: %d %s", topic, url, code, b)
	}
}
