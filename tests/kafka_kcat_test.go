//go:build unix

package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/ferrymq/ferry/engine"
)

// kcatRecord is one line of kcat's consumer output in kcatFormat.
type kcatRecord struct {
	partition        int
	offset           int64
	key, value, hdrs string
}

// kcatFormat prints a consumed record on one line; values hold no '|'.
const kcatFormat = `%p|%o|%k|%s|%h\n`

func parseKcat(t *testing.T, out string) []kcatRecord {
	t.Helper()
	var recs []kcatRecord
	for line := range strings.Lines(out) {
		f := strings.Split(strings.TrimSuffix(line, "\n"), "|")
		if len(f) != 5 {
			t.Fatalf("kcat printed %q", line)
		}
		var r kcatRecord
		if _, err := fmt.Sscan(f[0], &r.partition); err != nil {
			t.Fatalf("kcat printed %q", line)
		}
		if _, err := fmt.Sscan(f[1], &r.offset); err != nil {
			t.Fatalf("kcat printed %q", line)
		}
		r.key, r.value, r.hdrs = f[2], f[3], f[4]
		recs = append(recs, r)
	}
	return recs
}

// TestKafkaKcat drives kcat (librdkafka) against the server: metadata,
// producing keyed lines with headers, consuming everything back, and a
// balanced consumer group.
func TestKafkaKcat(t *testing.T) {
	kcat := needTool(t, "kcat")
	s, _ := startServer(t)
	addr := s.KafkaAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(kafkaClient(t, addr)).CreateTopic(ctx, 3, 1, nil, "kc"); err != nil {
		t.Fatal(err)
	}
	const timeout = 30 * time.Second
	// Kafka's own partitioner (murmur2), as Java clients and Ferry's
	// native publish use, rather than librdkafka's CRC32 default.
	base := []string{"-b", addr, "-X", "topic.partitioner=murmur2_random"}
	kcatArgs := func(args ...string) []string { return append(append([]string{}, base...), args...) }

	t.Run("Metadata", func(t *testing.T) {
		var md struct {
			Brokers []struct {
				ID   int    `json:"id"`
				Name string `json:"name"`
			} `json:"brokers"`
			Topics []struct {
				Topic      string `json:"topic"`
				Partitions []struct {
					Partition int `json:"partition"`
					Leader    int `json:"leader"`
				} `json:"partitions"`
			} `json:"topics"`
		}
		out := run(t, timeout, "", nil, kcat, kcatArgs("-L", "-J", "-t", "kc")...)
		if err := json.Unmarshal([]byte(out), &md); err != nil {
			t.Fatalf("kcat -L -J: %v\n%s", err, out)
		}
		if len(md.Brokers) != 1 || md.Brokers[0].Name != addr || len(md.Topics) != 1 || md.Topics[0].Topic != "kc" || len(md.Topics[0].Partitions) != 3 {
			t.Fatalf("kcat -L: %s", out)
		}
		for i, p := range md.Topics[0].Partitions {
			if p.Partition != i || p.Leader != 0 {
				t.Fatalf("kcat -L: %s", out)
			}
		}
	})

	// 30 lines with a key each (-K:) and two headers, then 2 with one key
	// for all (-k).
	const n = 30
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "key%d:value%d\n", i, i)
	}
	t.Run("Produce", func(t *testing.T) {
		run(t, timeout, "", []byte(lines.String()), kcat, kcatArgs("-P", "-t", "kc", "-K:", "-H", "h1=a", "-H", "h2=b")...)
		run(t, timeout, "", []byte("x\ny\n"), kcat, kcatArgs("-P", "-t", "kc", "-k", "fixed")...)
	})

	// check verifies what a consumer printed: every record once, dense
	// offsets per partition, each key in murmur2's partition.
	check := func(t *testing.T, recs []kcatRecord) {
		t.Helper()
		if len(recs) != n+2 {
			t.Fatalf("%d records, want %d: %+v", len(recs), n+2, recs)
		}
		seen := map[string]bool{}
		next := map[int]int64{}
		for _, r := range recs {
			if r.offset != next[r.partition] {
				t.Fatalf("partition %d: offset %d, want %d", r.partition, r.offset, next[r.partition])
			}
			next[r.partition]++
			if want := engine.KeyPartition([]byte(r.key), 3); r.partition != want {
				t.Errorf("key %q in partition %d, murmur2 says %d", r.key, r.partition, want)
			}
			seen[r.value] = true
			switch {
			case r.key == "fixed":
				if (r.value != "x" && r.value != "y") || r.hdrs != "" {
					t.Fatalf("record %+v", r)
				}
			case r.key != "key"+strings.TrimPrefix(r.value, "value") || r.hdrs != "h1=a,h2=b":
				t.Fatalf("record %+v", r)
			}
		}
		if len(seen) != n+2 {
			t.Fatalf("%d distinct values of %d", len(seen), n+2)
		}
	}

	t.Run("Consume", func(t *testing.T) {
		skipIfEmptyFetchIsNull(t, addr)
		out := run(t, timeout, "", nil, kcat, kcatArgs("-C", "-t", "kc", "-o", "beginning", "-e", "-f", kcatFormat)...)
		check(t, parseKcat(t, out))
	})

	t.Run("Group", func(t *testing.T) {
		skipWithoutGroups(t, addr)
		skipIfEmptyFetchIsNull(t, addr)
		// Not -o beginning: in -G mode kcat applies it to every partition
		// it is assigned, over the committed offsets. A group with no
		// offsets starts where auto.offset.reset says.
		out := run(t, timeout, "", nil, kcat, kcatArgs("-G", "kcgroup", "-X", "auto.offset.reset=earliest", "-c", fmt.Sprint(n+2), "-f", kcatFormat, "kc")...)
		check(t, parseKcat(t, out))
		// The group committed its offsets on leaving: it gets only what
		// comes next.
		run(t, timeout, "", []byte("later\n"), kcat, kcatArgs("-P", "-t", "kc", "-k", "fixed")...)
		out = run(t, timeout, "", nil, kcat, kcatArgs("-G", "kcgroup", "-X", "auto.offset.reset=earliest", "-c", "1", "-f", kcatFormat, "kc")...)
		if recs := parseKcat(t, out); len(recs) != 1 || recs[0].value != "later" {
			t.Fatalf("the group read again: %+v", recs)
		}
	})
}
