//go:build unix

package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrymq/ferry/engine"
)

// kafkajsDir installs tests/kafkajs (npm ci from its lock file) into a
// temporary folder and returns it, so the source folder gets no
// node_modules.
func kafkajsDir(t *testing.T) (node, dir string) {
	t.Helper()
	node = needTool(t, "node")
	npm := needTool(t, "npm")
	dir = t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "kafkajs.js"} {
		b, err := os.ReadFile(filepath.Join("kafkajs", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, 3*time.Minute, dir, nil, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	return node, dir
}

// jsonLines decodes each line of out into a T.
func jsonLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	for line := range strings.Lines(out) {
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		vs = append(vs, v)
	}
	return vs
}

// TestKafkaKafkajs drives kafkajs 2.2.4 (Node.js) against the server: its
// admin client creates, grows, describes and deletes topics; its producer
// sends keyed messages with headers (half of them gzip), which a franz-go
// consumer reads back; its consumer reads them in a group.
func TestKafkaKafkajs(t *testing.T) {
	node, dir := kafkajsDir(t)
	s, _ := startServer(t)
	addr := s.KafkaAddr()
	const timeout = 60 * time.Second

	t.Run("Admin", func(t *testing.T) {
		out := run(t, timeout, dir, nil, node, "kafkajs.js", "admin", addr, "jsadmin")
		var got struct {
			Created    *bool             `json:"created"`
			Partitions int               `json:"partitions"`
			Configs    map[string]string `json:"configs"`
			Topics     []string          `json:"topics"`
		}
		for line := range strings.Lines(out) {
			if err := json.Unmarshal([]byte(line), &got); err != nil { // each line fills its fields
				t.Fatalf("%v: %q", err, line)
			}
		}
		if got.Created == nil || !*got.Created || got.Partitions != 4 || got.Configs["retention.ms"] != "86400000" || got.Configs["cleanup.policy"] != "delete" ||
			!slices.Contains(got.Topics, "jsadmin") || slices.Contains(got.Topics, "jsadmin-scratch") {
			t.Fatalf("kafkajs admin: %+v\n%s", got, out)
		}
	})

	const n = 40
	t.Run("Produce", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := kadm.NewClient(kafkaClient(t, addr)).CreateTopic(ctx, 3, 1, nil, "js"); err != nil {
			t.Fatal(err)
		}
		run(t, timeout, dir, nil, node, "kafkajs.js", "produce", addr, "js", fmt.Sprint(n))
		kc := kafkaClient(t, addr, kgo.ConsumeTopics("js"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		recs := consumeN(t, kc, n)
		seen := map[string]bool{}
		parts := map[int32]bool{}
		for _, r := range recs {
			parts[r.Partition] = true
			var i int
			if _, err := fmt.Sscanf(string(r.Value), "v%d", &i); err != nil {
				t.Fatalf("value %q", r.Value)
			}
			hdr := map[string]string{}
			for _, h := range r.Headers {
				hdr[h.Key] = string(h.Value)
			}
			if string(r.Key) != fmt.Sprintf("k%d", i) || hdr["i"] != fmt.Sprint(i) || hdr["src"] != "kafkajs" || len(hdr) != 2 {
				t.Fatalf("record %d: key %q headers %v", i, r.Key, r.Headers)
			}
			// kafkajs's default partitioner is Java's murmur2, as Ferry's.
			if want := engine.KeyPartition(r.Key, 3); int(r.Partition) != want {
				t.Fatalf("key %q in partition %d, want %d", r.Key, r.Partition, want)
			}
			seen[string(r.Value)] = true
		}
		if len(seen) != n || len(parts) < 2 {
			t.Fatalf("%d distinct records of %d, in %d partitions", len(seen), n, len(parts))
		}
	})

	t.Run("Consume", func(t *testing.T) {
		skipWithoutGroups(t, addr)
		out := run(t, timeout, dir, nil, node, "kafkajs.js", "consume", addr, "js", fmt.Sprint(n), "jsgroup")
		type msg struct {
			Partition int               `json:"partition"`
			Offset    string            `json:"offset"`
			Key       string            `json:"key"`
			Value     string            `json:"value"`
			Headers   map[string]string `json:"headers"`
		}
		seen := map[string]bool{}
		for _, m := range jsonLines[msg](t, out) {
			if "k"+strings.TrimPrefix(m.Value, "v") != m.Key || m.Headers["src"] != "kafkajs" {
				t.Fatalf("kafkajs consumed %+v", m)
			}
			seen[m.Value] = true
		}
		if len(seen) != n {
			t.Fatalf("kafkajs consumed %d distinct messages of %d:\n%s", len(seen), n, out)
		}
	})
}
