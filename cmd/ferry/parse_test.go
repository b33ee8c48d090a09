package main

import (
	"slices"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "1h30m": 90 * time.Minute, "7d": 7 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "-15m": -15 * time.Minute, "-1d": -24 * time.Hour, "0": 0, "0d": 0, "250ms": 250 * time.Millisecond,
	} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7days", "soon", "1d-3h", "x1d"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, "512KiB": 512 << 10, "1 GiB": 1 << 30, "10GB": 10e9, "3MB": 3e6, "7B": 7, "2TiB": 2 << 40,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "1.5GiB", "-1", "5kb", "GiB", "9999999999TiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %v, want an error", in, got)
		}
	}
}

func TestParsePosition(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want position
	}{
		{"earliest", position{offset: -1}},
		{"latest", position{latest: true, offset: -1}},
		{"0", position{offset: 0}},
		{"1500", position{offset: 1500}},
		{"2026-04-30T10:00:00Z", position{offset: -1, time: time.Date(2026, 4, 30, 10, 0, 0, 0, time.UTC)}},
		{"-1h", position{offset: -1, time: now.Add(-time.Hour)}},
	} {
		got, err := parsePosition(tt.in, now)
		if err != nil || got.latest != tt.want.latest || got.offset != tt.want.offset || !got.time.Equal(tt.want.time) {
			t.Errorf("parsePosition(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"-5", "first", "2026-05-01", "1h"} {
		if got, err := parsePosition(in, now); err == nil {
			t.Errorf("parsePosition(%q) = %+v, want an error", in, got)
		}
	}
}

func TestServerURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"127.0.0.1:8080":          "http://127.0.0.1:8080",
		"http://broker:9000/":     "http://broker:9000",
		"https://ferry.example":   "https://ferry.example",
		" localhost:8080 ":        "http://localhost:8080",
		"http://gw:80/ferry/api/": "http://gw:80/ferry/api",
	} {
		if got, err := serverURL(in); err != nil || got != want {
			t.Errorf("serverURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ftp://host", "http://", "://x"} {
		if got, err := serverURL(in); err == nil {
			t.Errorf("serverURL(%q) = %q, want an error", in, got)
		}
	}
}

// TestCredit checks that with --count the grants never add up to more
// than the messages wanted.
func TestCredit(t *testing.T) {
	t.Parallel()
	o := consumeOptions{count: 25, prefetch: 10}
	c := &credit{count: o.count, granted: int(o.firstCredit())}
	var got []int32
	for _, n := range []int{4, 6, 10, 5} {
		got = append(got, c.grant(n))
	}
	if want := []int32{4, 6, 5, 0}; !slices.Equal(got, want) || c.granted != 25 {
		t.Errorf("grants %v (total %d), want %v (total 25)", got, c.granted, want)
	}
	unlimited := &credit{granted: 100}
	if g := unlimited.grant(7); g != 7 {
		t.Errorf("grant without --count = %d, want 7", g)
	}
	if f := (&consumeOptions{count: 3, prefetch: 100}).firstCredit(); f != 3 {
		t.Errorf("first credit for --count 3 = %d, want 3", f)
	}
}
