package peerlink

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the mesh's Prometheus collectors, farmlb_peerlink_*.
type metrics struct {
	members        *prometheus.GaugeVec
	rtt            prometheus.Histogram
	framesSent     *prometheus.CounterVec
	framesReceived *prometheus.CounterVec
	bytesSent      prometheus.Counter
	bytesReceived  prometheus.Counter
	transitions    *prometheus.CounterVec
	refused        prometheus.Counter
	messagesSent   prometheus.Counter
	messagesRecv   prometheus.Counter
	dropped        *prometheus.CounterVec
	stalls         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, self string) (*metrics, error) {
	labels := prometheus.Labels{"member": self}
	m := &metrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "farmlb_peerlink_members", Help: "Other members of the farm by state as this member sees them (up, suspect, unreachable: heard only by other members, down).", ConstLabels: labels,
		}, []string{"state"}),
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "farmlb_peerlink_heartbeat_rtt_seconds", Help: "Round-trip time measured by heartbeats.", ConstLabels: labels,
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5},
		}),
		framesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "farmlb_peerlink_frames_sent_total", Help: "Frames sent to peers, by frame type.", ConstLabels: labels,
		}, []string{"type"}),
		framesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "farmlb_peerlink_frames_received_total", Help: "Frames received from peers, by frame type.", ConstLabels: labels,
		}, []string{"type"}),
		bytesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farmlb_peerlink_bytes_sent_total", Help: "Bytes of frames sent to peers (QUIC overhead not included).", ConstLabels: labels,
		}),
		bytesReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farmlb_peerlink_bytes_received_total", Help: "Bytes of frames received from peers (QUIC overhead not included).", ConstLabels: labels,
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "farmlb_peerlink_transitions_total", Help: "Peers that became DOWN or UP, as this member saw it.", ConstLabels: labels,
		}, []string{"to"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farmlb_peerlink_refused_total", Help: "Connections refused: certificate not from the farm CA, or not a member.", ConstLabels: labels,
		}),
		messagesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farmlb_peerlink_messages_acked_total", Help: "Data messages sent and acknowledged by a peer.", ConstLabels: labels,
		}),
		messagesRecv: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farmlb_peerlink_messages_delivered_total", Help: "Data messages delivered to the Handler.", ConstLabels: labels,
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "farmlb_peerlink_frames_dropped_total", Help: "Frames dropped because a peer's send queue was full (a hung peer).", ConstLabels: labels,
		}, []string{"type"}),
	}
	m.stalls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "farmlb_peerlink_stalls_total", Help: "Times this member found itself stalled (its detector ran late) and held back suspicion.", ConstLabels: labels,
	})
	for _, c := range []prometheus.Collector{m.members, m.rtt, m.framesSent, m.framesReceived, m.bytesSent, m.bytesReceived, m.transitions, m.refused, m.messagesSent, m.messagesRecv, m.dropped, m.stalls} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, s := range []string{"up", "suspect", "unreachable", "down"} {
		m.members.WithLabelValues(s)
	}
	for _, s := range []string{"up", "down"} {
		m.transitions.WithLabelValues(s)
	}
	return m, nil
}

func (m *metrics) sent(t frameType, n int) {
	m.framesSent.WithLabelValues(t.String()).Inc()
	m.bytesSent.Add(float64(n))
}

func (m *metrics) received(t frameType, n int) {
	m.framesReceived.WithLabelValues(t.String()).Inc()
	m.bytesReceived.Add(float64(n))
}
