package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrymq/ferry/metrics"
)

// TestDoorsCallbacks: the callbacks handed to the doors move their door's
// series, and a door's connection gauge exists at 0 once wired.
func TestDoorsCallbacks(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := metrics.NewDoors(reg)
	httpConns, kafkaConns := d.Connection("http"), d.Connection("kafka")
	if v := value(t, reg, "ferry_connections", "door", "kafka"); v != 0 {
		t.Fatalf("kafka connections %v before any, want 0", v)
	}
	httpConns(1)
	httpConns(1)
	kafkaConns(1)
	httpConns(-1)
	if v := value(t, reg, "ferry_connections", "door", "http"); v != 1 {
		t.Errorf("http connections %v, want 1", v)
	}
	if v := value(t, reg, "ferry_connections", "door", "kafka"); v != 1 {
		t.Errorf("kafka connections %v, want 1", v)
	}
	kafkaErr := d.RequestError("kafka")
	kafkaErr("UNKNOWN_TOPIC_OR_PARTITION")
	kafkaErr("UNKNOWN_TOPIC_OR_PARTITION")
	d.RequestError("http")("not_found")
	if v := value(t, reg, "ferry_request_errors_total", "door", "kafka", "code", "UNKNOWN_TOPIC_OR_PARTITION"); v != 2 {
		t.Errorf("kafka errors %v, want 2", v)
	}
	if v := value(t, reg, "ferry_request_errors_total", "door", "http", "code", "not_found"); v != 1 {
		t.Errorf("http errors %v, want 1", v)
	}
}
