package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPubFromArgs(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "orders")
	r := b.ok(t, "pub", "orders", "first", "second", "third")
	want := "partition 0 offset 0\npartition 0 offset 1\npartition 0 offset 2\n"
	if r.stdout != want {
		t.Errorf("%v\nwant stdout %q", r, want)
	}
	r = b.ok(t, "pub", "orders", "--key", "user-1", "-H", "trace=abc", "-H", "source=cli", "--partition", "0", "-o", "json", "keyed")
	var pv publishedView
	decode(t, r, &pv)
	if pv != (publishedView{Partition: 0, Offset: 3}) {
		t.Errorf("pub -o json: %+v", pv)
	}
	ms := jsonLines(t, b.ok(t, "read", "orders", "-o", "json"))
	if len(ms) != 4 || *ms[0].Value != "first" || *ms[2].Value != "third" {
		t.Fatalf("read back %+v", ms)
	}
	k := ms[3]
	if k.Key == nil || *k.Key != "user-1" || *k.Value != "keyed" || len(k.Headers) != 2 ||
		k.Headers[0].Name != "trace" || *k.Headers[0].Value != "abc" || k.Headers[1].Name != "source" {
		t.Errorf("keyed message read back as %+v", k)
	}
}

func TestPubFromStdin(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "events")
	// Few lines: one unary call, a line of output per message.
	r := b.run(t, "one\ntwo\r\n\nfour", "pub", "events")
	if r.code != exitOK || len(lines(r.stdout)) != 4 {
		t.Fatalf("%v", r)
	}
	// Many lines in small batches: the publish stream, pipelined; results
	// still in input order.
	var in strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&in, "line %d\n", i)
	}
	r = b.run(t, in.String(), "pub", "events", "--batch", "7", "-o", "json")
	if r.code != exitOK {
		t.Fatalf("%v", r)
	}
	got := lines(r.stdout)
	if len(got) != 1000 {
		t.Fatalf("pub printed %d results, want 1000", len(got))
	}
	for i, line := range got {
		var pv publishedView
		if err := json.Unmarshal([]byte(line), &pv); err != nil || pv.Offset != int64(4+i) {
			t.Fatalf("result %d: %q (%v), want offset %d", i, line, err, 4+i)
		}
	}
	r = b.run(t, in.String(), "pub", "events", "--batch", "50", "--quiet")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "published 1000 messages to \"events\" in ") {
		t.Fatalf("%v", r)
	}

	read := b.ok(t, "read", "events")
	values := lines(read.stdout)
	if len(values) != 2004 || values[0] != "one" || values[1] != "two" || values[2] != "" || values[3] != "four" {
		t.Fatalf("read back %d values, starting %q", len(values), values[:min(4, len(values))])
	}
	for i := range 1000 {
		if want := fmt.Sprintf("line %d", i); values[4+i] != want || values[1004+i] != want {
			t.Fatalf("values %d and %d are %q and %q, want %q", 4+i, 1004+i, values[4+i], values[1004+i], want)
		}
	}
}

func TestPubFileAndDedup(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "uploads")
	blob := []byte{0xff, 0x00, 'a', '\n', 0xfe}
	file := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(file, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	b.ok(t, "pub", "uploads", "--file", file, "--id", "blob-1")
	r := b.ok(t, "pub", "uploads", "--file", file, "--id", "blob-1")
	if r.stdout != "partition 0 offset 0 (duplicate: stored before)\n" {
		t.Errorf("a retried publish: %v", r)
	}
	// Several messages get ID-1, ID-2...: a retry of the same input is
	// stored once.
	b.ok(t, "pub", "uploads", "--id", "batch", "x", "y")
	r = b.ok(t, "pub", "uploads", "--id", "batch", "x", "y", "-q")
	if !strings.Contains(r.stdout, "published 0 messages") || !strings.Contains(r.stdout, "2 duplicates") {
		t.Errorf("a retried publish of two: %v", r)
	}
	ms := jsonLines(t, b.ok(t, "read", "uploads", "-o", "json"))
	if len(ms) != 3 || ms[0].Value != nil || ms[0].ID != "blob-1" || ms[1].ID != "batch-1" || ms[2].ID != "batch-2" {
		t.Fatalf("read back %+v", ms)
	}
	if got, err := base64.StdEncoding.DecodeString(ms[0].ValueBase64); err != nil || !bytes.Equal(got, blob) {
		t.Errorf("binary value read back as %q (%v), want %q", got, err, blob)
	}
}

func TestPubErrors(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "small", "--max-message-bytes", "100")
	for _, tt := range []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"", []string{"pub", "nope", "x"}, exitNotFound, `unknown topic "nope" (not_found)`},
		{strings.Repeat("x\n", 600), []string{"pub", "nope", "--batch", "100"}, exitNotFound, "600 of 600 messages not published"},
		{"", []string{"pub", "small", strings.Repeat("x", 200)}, exitFailure, "(invalid_argument)"},
		{"", []string{"pub", "small", "-H", "novalue", "x"}, exitUsage, `bad --header "novalue"`},
		{"", []string{"pub", "small", "--file", "f", "x"}, exitUsage, "not both"},
		{"", []string{"pub"}, exitUsage, "requires at least 1 arg"},
		{"", []string{"pub", "small", "--batch", "0", "x"}, exitUsage, "--batch"},
	} {
		r := b.run(t, tt.stdin, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v\nwant exit %d and %q", r, tt.code, tt.want)
		}
	}
}

func TestPubKeysAndRate(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	b.ok(t, "topic", "create", "orders", "--partitions", "8")
	// A key's messages all go to one partition, each call alike.
	var parts []string
	for range 3 {
		r := b.ok(t, "pub", "orders", "--key", "user-42", "x", "y")
		for _, line := range lines(r.stdout) {
			parts = append(parts, strings.Fields(line)[1])
		}
	}
	for _, p := range parts {
		if p != parts[0] {
			t.Fatalf("messages of one key went to partitions %v", parts)
		}
	}
	// --rate 50: eleven messages take at least 10/50 s.
	start := time.Now()
	r := b.ok(t, "pub", "orders", "--rate", "50", "-q", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11")
	if took := time.Since(start); took < 200*time.Millisecond || !strings.HasPrefix(r.stdout, "published 11 messages") {
		t.Errorf("--rate 50 published 11 messages in %v: %v", took, r)
	}
}
