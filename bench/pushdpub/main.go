// Command pushdpub measures sustained publishes per second across the
// nodes of a farm: -c concurrent publishers, each publishing to the nodes
// in turn for -d; it prints publishes/s and the publish (ack) latency.
// With -stream it also holds one SSE stream per node and checks that each
// stream received every acknowledged message.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	urls := flag.String("urls", "http://127.0.0.41:8080,http://127.0.0.42:8080,http://127.0.0.43:8080", "comma-separated node URLs")
	conc := flag.Int("c", 16, "concurrent publishers")
	dur := flag.Duration("d", 10*time.Second, "how long to publish")
	size := flag.Int("size", 100, "payload bytes")
	token := flag.String("token", os.Getenv("FARMLB_TOKEN"), "publish token")
	topics := flag.Int("topics", 4, "topics to spread the publishes over")
	stream := flag.Bool("stream", true, "hold one stream per node and count what it receives")
	timed := flag.Int("timed", 0, "instead: publish this many messages to the first URL's topic -topic, one every -gap, each one's data its publish time in unix nanoseconds (for the fan-out benchmark)")
	gap := flag.Duration("gap", 500*time.Millisecond, "with -timed, the time between publishes")
	topic := flag.String("topic", "bench", "with -timed, the topic")
	flag.Parse()
	nodes := strings.Split(*urls, ",")
	tr := &http.Transport{MaxIdleConnsPerHost: *conc}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	if *timed > 0 {
		if err := publishTimed(client, nodes[0], *topic, *token, *timed, *gap); err != nil {
			fmt.Fprintln(os.Stderr, "pushdpub:", err)
			os.Exit(1)
		}
		return
	}

	var received []*atomic.Int64
	if *stream {
		var q []string
		for i := range *topics {
			q = append(q, fmt.Sprintf("topic=bench%d", i))
		}
		q = append(q, "event=topic") // events named by topic: "event: bench…" lines
		for _, u := range nodes {
			resp, err := http.Get(u + "/stream?" + strings.Join(q, "&"))
			if err != nil || resp.StatusCode != 200 {
				fmt.Fprintln(os.Stderr, "pushdpub: stream:", u, err)
				os.Exit(1)
			}
			n := &atomic.Int64{}
			received = append(received, n)
			go func() {
				br := bufio.NewReader(resp.Body)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if bytes.HasPrefix(line, []byte("event: bench")) {
						n.Add(1)
					}
				}
			}()
		}
	}

	payload := strings.Repeat("x", *size)
	var mu sync.Mutex
	var lats []time.Duration
	var ok, failed atomic.Int64
	stop := time.Now().Add(*dur)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; time.Now().Before(stop); i++ {
				u := nodes[(w+i)%len(nodes)]
				req, _ := http.NewRequest("POST", fmt.Sprintf("%s/publish/bench%d", u, (w+i)%*topics), strings.NewReader(payload))
				req.Header.Set("Authorization", "Bearer "+*token)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
				ok.Add(1)
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lats, func(a, b int) bool { return lats[a] < lats[b] })
	p := func(q float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[int(q*float64(len(lats)-1))]
	}
	fmt.Printf("publishes: %d ok, %d failed in %v: %.0f/s; ack latency p50=%v p99=%v max=%v\n",
		ok.Load(), failed.Load(), el.Round(time.Millisecond), float64(ok.Load())/el.Seconds(), p(0.5), p(0.99), p(1))
	if *stream {
		deadline := time.Now().Add(10 * time.Second)
		for {
			all := true
			for _, n := range received {
				if n.Load() < ok.Load() {
					all = false
				}
			}
			if all || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		for i, n := range received {
			fmt.Printf("stream on %s received %d (acknowledged %d)\n", nodes[i], n.Load(), ok.Load())
		}
	}
}

// publishTimed publishes n messages whose data is the time just before
// each request is sent, on one kept-alive connection (a first publish to
// another topic opens it), so that a subscriber's receive time minus the
// data is the publish-to-delivery latency without a process start or a
// TCP handshake in it.
func publishTimed(client *http.Client, node, topic, token string, n int, gap time.Duration) error {
	post := func(topic, data string) error {
		req, err := http.NewRequest("POST", node+"/publish/"+topic, strings.NewReader(data))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("publish: %s", resp.Status)
		}
		return nil
	}
	if err := post(topic+"-warmup", "warm-up"); err != nil {
		return err
	}
	next := time.Now()
	for range n {
		if err := post(topic, strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
			return err
		}
		next = next.Add(gap)
		time.Sleep(time.Until(next))
	}
	return nil
}
