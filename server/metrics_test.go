package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMetricsEndpoint checks /metrics serves the Prometheus text format
// with the runtime, process and broker series, and that each server has
// its own registry: two in one process start and serve side by side.
func TestMetricsEndpoint(t *testing.T) {
	for range 2 {
		s, err := Start(testConfig(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s.Shutdown(ctx)
		})
		resp, err := http.Get("http://" + s.Addr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/plain") {
			t.Fatalf("/metrics: %d %s", resp.StatusCode, ct)
		}
		code, body, _ := get(t, http.DefaultClient, "http://"+s.Addr()+"/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		for _, want := range []string{"\ngo_goroutines ", "\nprocess_start_time_seconds ", "\nferry_topics 0", "\nferry_data_disk_free_bytes "} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
			}
		}
	}
}

// TestCountConns: the HTTP listener's ConnState counts a connection once
// opened and once ended, whether closed or hijacked.
func TestCountConns(t *testing.T) {
	n := 0
	cs := countConns(func(d int) { n += d })
	for _, st := range []http.ConnState{http.StateNew, http.StateActive, http.StateIdle, http.StateActive, http.StateNew} {
		cs(nil, st)
	}
	if n != 2 {
		t.Fatalf("two opened: %d", n)
	}
	cs(nil, http.StateClosed)
	cs(nil, http.StateHijacked)
	if n != 0 {
		t.Fatalf("both ended: %d", n)
	}
}
