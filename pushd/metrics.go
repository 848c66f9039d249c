package pushd

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	streams     prometheus.Gauge
	refused     *prometheus.CounterVec
	publishes   *prometheus.CounterVec
	publishAck  prometheus.Histogram
	fanout      prometheus.Histogram
	delivered   prometheus.Counter
	duplicates  prometheus.Counter
	keyCopies   prometheus.Counter
	droppedSlow prometheus.Counter
	resets      prometheus.Counter
	fills       prometheus.Counter
	gapsLost    prometheus.Counter
	depHolds    prometheus.Counter
	depTimeouts prometheus.Counter
	history     prometheus.Gauge
	replicated  *prometheus.CounterVec
	sendErrors  *prometheus.CounterVec
	peerDropped *prometheus.CounterVec
	peerUp      *prometheus.GaugeVec
	wireErrors  prometheus.Counter
	moves       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "farmlb", "pushd"
	latency := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	m := &metrics{
		streams:     prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "streams", Help: "Open SSE streams (the node's users)."}),
		refused:     prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "streams_refused_total", Help: "Streams refused with 503, by reason."}, []string{"reason"}),
		publishes:   prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "publishes_total", Help: "Publish requests accepted here, by result (ok, duplicate, unreplicated, error)."}, []string{"result"}),
		publishAck:  prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "publish_ack_seconds", Help: "Time from a publish until a second node held it.", Buckets: latency}),
		fanout:      prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "fanout_latency_seconds", Help: "Time from publish (at the origin) to the write of the event to a stream.", Buckets: latency}),
		delivered:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "messages_delivered_total", Help: "Messages added to this node's history (held twice)."}),
		duplicates:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "messages_duplicate_total", Help: "Replicated messages received again and ignored."}),
		keyCopies:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "key_copies_total", Help: "Messages taken in whose Idempotency-Key this node already held under another id; streams show one copy."}),
		droppedSlow: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dropped_slow_clients_total", Help: "Streams closed because the client accepted nothing for WriteTimeout."}),
		resets:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "resets_total", Help: "farmlb-reset events sent (history did not cover a cursor)."}),
		fills:       prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "fill_requests_total", Help: "Gap fills asked of peers."}),
		gapsLost:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "gaps_lost_total", Help: "History gaps no peer could fill."}),
		depHolds:    prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "causal_holds_total", Help: "Received messages held back because one they depend on (delivered at their origin before it stamped them) was not delivered here yet."}),
		depTimeouts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "causal_timeouts_total", Help: "Held messages delivered without their dependencies after waiting 10 s for them."}),
		history:     prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "history_messages", Help: "Messages held in history, all topics."}),
		replicated:  prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "replicated_total", Help: "Messages a peer acknowledged, by peer."}, []string{"peer"}),
		sendErrors:  prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "send_errors_total", Help: "Frames a peer did not take, by peer."}, []string{"peer"}),
		peerDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "peer_queue_dropped_total", Help: "Items dropped from a peer's queue (peer down or queue full), by peer."}, []string{"peer"}),
		peerUp:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "peer_up", Help: "1 when the peer is UP or DRAINING in the table, 0 when DOWN."}, []string{"peer"}),
		wireErrors:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "wire_errors_total", Help: "Mesh messages that could not be decoded."}),
		moves:       prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "moves_total", Help: "farmlb-move events sent (drain)."}),
	}
	for _, c := range []prometheus.Collector{m.streams, m.refused, m.publishes, m.publishAck, m.fanout, m.delivered, m.duplicates, m.keyCopies, m.droppedSlow, m.resets, m.fills, m.gapsLost, m.depHolds, m.depTimeouts, m.history, m.replicated, m.sendErrors, m.peerDropped, m.peerUp, m.wireErrors, m.moves} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
