package pushd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/peerlink"
)

// meshNode is a pushd node on the real QUIC mesh, in process.
type meshNode struct {
	srv  *Server
	mesh *peerlink.Mesh
	url  string
	stop func()
}

// startMesh starts n pushd nodes joined by peerlink over QUIC with mutual
// TLS, each on its own 127.0.0.x.
func startMesh(t *testing.T, names ...string) map[string]*meshNode {
	t.Helper()
	checkLeaks(t)
	caPEM, caKey, err := peerlink.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	var y strings.Builder
	y.WriteString("service: stream.test\ntls: {ca: ca.crt, cert: x.crt, key: x.key}\ntokens: {publish: " + testToken + "}\nnodes:\n")
	udp := map[string]net.PacketConn{}
	tcp := map[string]net.Listener{}
	for i, name := range names {
		ip := fmt.Sprintf("127.0.0.%d", 60+i)
		pc, err := net.ListenPacket("udp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		udp[name], tcp[name] = pc, ln
		fmt.Fprintf(&y, "  - {name: %s, url: \"http://%s\", peer: \"%s\"}\n", name, ln.Addr(), pc.LocalAddr())
	}
	f, err := config.Parse([]byte(y.String()))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*meshNode{}
	for _, name := range names {
		crt, key, err := peerlink.IssueCert(caPEM, caKey, name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(crt, key)
		if err != nil {
			t.Fatal(err)
		}
		n := &meshNode{url: "http://" + tcp[name].Addr().String()}
		pcfg := peerlink.DefaultConfig()
		pcfg.Farm, pcfg.Self, pcfg.PacketConn, pcfg.Certificate, pcfg.CA = f, name, udp[name], &pair, pool
		pcfg.Handler = func(from string, body []byte) error { return n.srv.HandlePeer(from, body) }
		if n.mesh, err = peerlink.New(pcfg); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.Mesh, cfg.Listener, cfg.PublishToken = n.mesh, tcp[name], testToken
		if n.srv, err = New(cfg); err != nil {
			t.Fatal(err)
		}
		if err := n.mesh.Listen(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		meshDone, srvDone := make(chan error, 1), make(chan error, 1)
		go func() { meshDone <- n.mesh.Serve(ctx) }()
		go func() { srvDone <- n.srv.Serve(ctx) }()
		stopped := false
		n.stop = func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-srvDone; err != nil {
				t.Errorf("%s: pushd: %v", name, err)
			}
			if err := <-meshDone; err != nil {
				t.Errorf("%s: mesh: %v", name, err)
			}
		}
		t.Cleanup(n.stop)
		out[name] = n
	}
	for _, n := range out {
		ch, cancel := n.mesh.Subscribe()
		for !allUp(n.mesh.Table(), names) {
			select {
			case <-ch:
			case <-time.After(20 * time.Second):
				t.Fatalf("mesh not UP: %+v", n.mesh.Table().Servers)
			}
		}
		cancel()
	}
	return out
}

func allUp(l *farm.List, names []string) bool {
	for _, name := range names {
		if s, _ := l.Find(name); s.Status != farm.StatusUp {
			return false
		}
	}
	return true
}

// TestRealMesh runs the data path over peerlink in process: a publish on
// any node reaches the streams of every node, and a client whose node
// stops resumes on another with its cursor, missing nothing and seeing
// nothing twice.
func TestRealMesh(t *testing.T) {
	nodes := startMesh(t, "a", "b", "c")
	ca := openStream(t, nil, nodes["a"].url+"/stream?topic=t", "")
	cc := openStream(t, nil, nodes["c"].url+"/stream?topic=t", "")
	// One publisher moving from node to node, each publish after the
	// previous answer: every node shows its messages in its order.
	for i := range 5 {
		mustPublish(t, nodes[[]string{"a", "b", "c"}[i%3]].url, "t", fmt.Sprint(i))
	}
	for _, c := range []*sseClient{ca, cc} {
		got := c.data(t, 5)
		if strings.Join(got, ",") != "0,1,2,3,4" {
			t.Errorf("got %v", got)
		}
	}
	nodes["a"].stop()
	for range ca.events {
	}
	for i := 5; i < 10; i++ {
		mustPublish(t, nodes["b"].url, "t", fmt.Sprint(i))
	}
	cb := openStream(t, nil, nodes["b"].url+"/stream?topic=t", ca.lastID)
	got := cb.data(t, 5)
	if strings.Join(got, ",") != "5,6,7,8,9" {
		t.Errorf("resumed on b: %v", got)
	}
	cb.expectNothing(t, 200*time.Millisecond)
	// b's user count (its open streams) reaches the other nodes' tables.
	ch, cancel := nodes["c"].mesh.Subscribe()
	defer cancel()
	deadline := time.After(5 * time.Second)
	for {
		if s, _ := nodes["c"].mesh.Table().Find("b"); s.Users == 1 {
			break
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("b's users never reached c: %+v", nodes["c"].mesh.Table().Servers)
		}
	}
}

// TestHTTPSStream serves streams over TLS: HTTP/2 by ALPN, and HTTP/1.1
// for a client that offers only that (the hijacked path, over TLS).
func TestHTTPSStream(t *testing.T) {
	caPEM, caKey, err := peerlink.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := peerlink.IssueCert(caPEM, caKey, "node", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, _ := tls.X509KeyPair(crt, key)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	f := newMemFarm("a")
	nodes := startNodes(t, f, func(c *Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	}, "a")
	url := strings.Replace(nodes["a"].url, "http://", "https://", 1)
	tests := []struct {
		name  string
		h2    bool
		proto int
	}{
		{"http2", true, 2},
		{"http1.1", false, 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "node"}, ForceAttemptHTTP2: tc.h2}
			if !tc.h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			c := openStream(t, &http.Client{Transport: tr}, url+"/stream?topic=t", "")
			if c.resp.ProtoMajor != tc.proto {
				t.Fatalf("proto %s", c.resp.Proto)
			}
			req, _ := http.NewRequest("POST", url+"/publish/t", strings.NewReader(fmt.Sprint("m", i)))
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if ev := c.next(t); ev.Data != fmt.Sprint("m", i) {
				t.Fatalf("%+v", ev)
			}
			c.close()
		})
	}
}
