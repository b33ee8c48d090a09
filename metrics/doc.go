// Package metrics turns the engine's events and state into Prometheus
// series, on a registry it is given (never the global one).
//
// Counters (messages published, deliveries, acks, ...) and histograms
// (publish, end-to-end and fsync latency) are fed by engine hooks: a *Hooks is passed
// to engine.Open in Options.Hooks, then follows the broker's topics and
// subscriptions (Hooks.Follow). Gauges
// (backlog, storage bytes, offsets, disk free, ...) are read from the
// broker at scrape time by a Collector, so they are never stale and cost
// nothing between scrapes.
//
// The front doors' connections and request errors are counted by Doors,
// which hands each door plain callbacks (kafka.Options.OnConnection and
// OnRequestError, native.Options.OnError, an http.Server's ConnState), so
// the doors import no Prometheus.
//
// The engine knows nothing of this package; the server wires the two:
//
//	reg := prometheus.NewRegistry()
//	hooks := metrics.NewHooks(reg)
//	b, _ := engine.Open(engine.Options{Dir: dir, Hooks: []engine.Hook{hooks}})
//	hooks.Follow(b) // counters from 0 for every partition and subscription
//	reg.MustRegister(metrics.NewCollector(b, dir, logger))
//	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// docs/operations.md lists every series and ready alert rules.
package metrics
