package metrics

import "github.com/prometheus/client_golang/prometheus"

// Doors counts what happens at the front doors: the connections open on
// each and the errors their requests end in. It hands each door plain
// callbacks (Connection, RequestError), so the doors import no Prometheus.
//
// The door label is the listener: "http" (the native API, the dashboard
// and /metrics) or "kafka". The code label is the door's own name for the
// error: a Connect code ("not_found") on http, a Kafka error name
// ("UNKNOWN_TOPIC_OR_PARTITION") on kafka; both sets are fixed by the
// protocols, never by traffic.
type Doors struct {
	connections   *prometheus.GaugeVec
	requestErrors *prometheus.CounterVec
}

// NewDoors makes the front-door series and registers them on reg.
func NewDoors(reg prometheus.Registerer) *Doors {
	d := &Doors{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "connections",
			Help: "Connections open on a front door's listener."}, []string{"door"}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "request_errors_total",
			Help: "Errors a front door answered, by the door's error code: native API calls that failed, " +
				"and each non-zero error code in a Kafka response (top-level, per topic, partition or group)."},
			[]string{"door", "code"}),
	}
	reg.MustRegister(d.connections, d.requestErrors)
	return d
}

// Connection returns the callback that door reports its connections to:
// +1 when one opens, -1 when it ends. The door's gauge exists at 0 from
// this call on.
func (d *Doors) Connection(door string) func(delta int) {
	g := d.connections.WithLabelValues(door)
	return func(delta int) { g.Add(float64(delta)) }
}

// RequestError returns the callback that door reports its request errors
// to, by code.
func (d *Doors) RequestError(door string) func(code string) {
	return func(code string) { d.requestErrors.WithLabelValues(door, code).Inc() }
}
