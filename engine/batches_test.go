package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/ferrymq/ferry/storage/record"
)

// decodeBatches turns what ReceiveBatches and FetchBatches return into
// messages, as a client decoding record_batches does, checking that each
// delivers exactly its range. The messages own their bytes: a take with a
// Scratch reuses it.
func decodeBatches(t *testing.T, bs []Batches) []Message {
	t.Helper()
	var out []Message
	for _, b := range bs {
		next := b.From
		err := record.Split(b.Data, func(h record.Header, batch []byte) error {
			return record.Records(batch, record.Limits{}, func(r record.Record) error {
				if r.Offset >= b.From && r.Offset < b.Until {
					if r.Offset != next {
						return fmt.Errorf("offset %d, want %d", r.Offset, next)
					}
					m := messageFromRecord(b.Topic, b.Partition, r)
					m.Key, m.Value = bytes.Clone(m.Key), bytes.Clone(m.Value)
					for i := range m.Headers {
						m.Headers[i].Value = bytes.Clone(m.Headers[i].Value)
					}
					out = append(out, m)
					next++
				}
				return nil
			})
		})
		if err != nil || next != b.Until {
			t.Fatalf("batches %s/%d [%d,%d): decoded up to %d: %v", b.Topic, b.Partition, b.From, b.Until, next, err)
		}
	}
	return out
}

// perPartition groups messages by topic and partition, in the order seen.
func perPartition(ms []Message) map[string][]Message {
	out := map[string][]Message{}
	for _, m := range ms {
		k := fmt.Sprintf("%s/%d", m.Topic, m.Partition)
		out[k] = append(out[k], m)
	}
	return out
}

// TestBatchesMatchMessages: taking stored batches delivers, partition by
// partition, the same messages in the same order as taking messages, for
// takes of any size, over batches of any size, with ids and headers.
func TestBatchesMatchMessages(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never"})
			createTopic(t, b, "s.a", TopicConfig{Partitions: 3})
			createTopic(t, b, "s.b", TopicConfig{})
			for _, sub := range []string{"msgs", "batches"} {
				if _, err := b.CreateSubscription(bg, "s.a", sub, SubscriptionConfig{Kind: KindStream, StartAt: StartEarliest}); err != nil {
					t.Fatal(err)
				}
			}
			// Some messages before the ephemerals start, which must not see them.
			publish(t, b, "s.a", Message{Value: []byte("early")})
			em, _ := b.SubscribeEphemeral("s.*", EphemeralOptions{Buffer: 1 << 30})
			eb, _ := b.SubscribeEphemeral("s.*", EphemeralOptions{Buffer: 1 << 30})
			defer em.Close()
			defer eb.Close()
			total, all := 1, 0 // messages on s.a; on s.* since the ephemerals started
			for range 40 {
				n := 1 + rng.IntN(60)
				msgs := make([]Message, n)
				for i := range msgs {
					msgs[i] = Message{Key: fmt.Appendf(nil, "k%d", rng.IntN(9)), Value: fmt.Appendf(nil, "v%d", all+i)}
					if rng.IntN(4) == 0 {
						msgs[i].Headers = []Header{{Key: "h", Value: []byte("x")}}
					}
					if rng.IntN(5) == 0 {
						msgs[i].ID = fmt.Sprint("id", all+i)
					}
				}
				topic := "s.a"
				if rng.IntN(3) == 0 {
					topic = "s.b"
				}
				publish(t, b, topic, msgs...)
				all += n
				if topic == "s.a" {
					total += n
				}
			}

			ctx, cancel := context.WithTimeout(bg, 10*time.Second)
			defer cancel()
			var want, got []Message
			var scratch Scratch // reused by every take, across partitions and topics
			for len(want) < all {
				ms, err := em.Receive(ctx, 1+rng.IntN(100))
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, ms...)
			}
			for len(got) < all {
				limit := 1 + rng.IntN(100)
				bs, err := eb.ReceiveBatches(ctx, limit, &scratch)
				if err != nil {
					t.Fatal(err)
				}
				ms := decodeBatches(t, bs)
				if len(ms) > limit {
					t.Fatalf("ReceiveBatches(%d) delivered %d", limit, len(ms))
				}
				for i := range bs {
					dm, err := bs[i].Messages()
					if err != nil || !reflect.DeepEqual(dm, decodeBatches(t, bs[i:i+1])) {
						t.Fatalf("Batches.Messages gave %d messages (%v), decoding %d", len(dm), err, bs[i].Count())
					}
				}
				got = append(got, ms...)
			}
			if !reflect.DeepEqual(perPartition(got), perPartition(want)) {
				t.Fatalf("ephemeral: batches and messages differ: %d against %d messages", len(got), len(want))
			}

			// A stream subscription taken by batches matches one taken by messages.
			mm, _ := b.JoinStream("s.a", "msgs", 0)
			mb, _ := b.JoinStream("s.a", "batches", 0)
			defer mm.Leave()
			defer mb.Leave()
			want, got = nil, nil
			for len(want) < total || len(got) < total {
				if len(want) < total {
					ms, err := mm.Fetch(ctx, 1+rng.IntN(100))
					if err != nil {
						t.Fatal(err)
					}
					want = append(want, ms...)
				}
				if len(got) < total {
					limit := 1 + rng.IntN(100)
					bs, err := mb.FetchBatches(ctx, limit, &scratch)
					if err != nil {
						t.Fatal(err)
					}
					ms := decodeBatches(t, bs)
					if len(ms) > limit {
						t.Fatalf("FetchBatches(%d) delivered %d", limit, len(ms))
					}
					got = append(got, ms...)
				}
			}
			if !reflect.DeepEqual(perPartition(got), perPartition(want)) || len(got) != total {
				t.Fatalf("stream: batches and messages differ: %d against %d messages, %d published", len(got), len(want), total)
			}
		})
	}
}

// TestReadAsBatchesMatchesRead: a read that returns stored batches
// delivers the same messages, and the same next offset, as one that
// decodes them, from any offset and with any message bound.
func TestReadAsBatchesMatchesRead(t *testing.T) {
	b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never"})
	createTopic(t, b, "r", TopicConfig{})
	total := 0
	rng := rand.New(rand.NewPCG(3, 4))
	for range 30 {
		n := 1 + rng.IntN(50)
		msgs := make([]Message, n)
		for i := range msgs {
			msgs[i] = Message{Value: fmt.Appendf(nil, "v%d", total+i), ID: fmt.Sprint("id", total+i)}
		}
		publish(t, b, "r", msgs...)
		total += n
	}
	for range 200 {
		off := int64(rng.IntN(total + 1))
		opts := ReadOptions{MaxMessages: rng.IntN(120), MaxBytes: 1 + rng.IntN(4096)}
		want, err := b.Read(bg, "r", 0, off, opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.AsBatches = true
		got, err := b.Read(bg, "r", 0, off, opts)
		if err != nil {
			t.Fatal(err)
		}
		var ms []Message
		if got.Batches.Count() > 0 {
			ms = decodeBatches(t, []Batches{got.Batches})
		}
		if len(got.Messages) != 0 || !reflect.DeepEqual(ms, want.Messages) && (len(ms) > 0 || len(want.Messages) > 0) ||
			got.NextOffset != want.NextOffset || got.HighWatermark != want.HighWatermark {
			t.Fatalf("read at %d %+v: batches gave %d messages, next %d; messages %d, next %d",
				off, opts, len(ms), got.NextOffset, len(want.Messages), want.NextOffset)
		}
	}
}

// TestTakesSendEachBatchOnce: a consumer's takes of batches end on batch
// boundaries once they hold a batch, in the partition they started with
// and in those taken after it, so consecutive takes never send one stored
// batch twice; and a Scratch lends the same memory to each take.
func TestTakesSendEachBatchOnce(t *testing.T) {
	sizes := []int{100, 100, 37, 100, 100, 100, 61, 100, 100, 100}
	for _, kind := range []string{"ephemeral", "stream"} {
		t.Run(kind, func(t *testing.T) {
			b := openBroker(t, t.TempDir(), Options{DefaultFsync: "never"})
			createTopic(t, b, "w", TopicConfig{Partitions: 2})
			if _, err := b.CreateSubscription(bg, "w", "s", SubscriptionConfig{Kind: KindStream, StartAt: StartEarliest}); err != nil {
				t.Fatal(err)
			}
			e, _ := b.SubscribeEphemeral("w", EphemeralOptions{Buffer: 1 << 30})
			defer e.Close()
			total := 0
			for i, n := range sizes {
				for p := range 2 {
					msgs := make([]Message, n)
					for j := range msgs {
						msgs[j] = Message{Value: fmt.Appendf(nil, "%d-%d-%d", p, i, j)}
					}
					if _, err := b.PublishTo(bg, "w", p, msgs...); err != nil {
						t.Fatal(err)
					}
					total += n
				}
			}
			m, err := b.JoinStream("w", "s", 0)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Leave()
			take := func(ctx context.Context, n int, s *Scratch) ([]Batches, error) {
				if kind == "stream" {
					return m.FetchBatches(ctx, n, s)
				}
				return e.ReceiveBatches(ctx, n, s)
			}
			ctx, cancel := context.WithTimeout(bg, 10*time.Second)
			defer cancel()
			var scratch Scratch
			var got []Message
			sent := 0
			var first *byte // of the second take: the first finds the scratch empty
			for takes := 0; len(got) < total; takes++ {
				bs, err := take(ctx, 250, &scratch)
				if err != nil {
					t.Fatal(err)
				}
				for _, bb := range bs {
					sent += len(bb.Data)
				}
				switch {
				case takes == 1:
					first = &bs[0].Data[0]
				case takes > 1 && &bs[0].Data[0] != first:
					t.Fatalf("take %d at %d did not read into the scratch of the second", takes, bs[0].From)
				}
				got = append(got, decodeBatches(t, bs)...)
			}
			next := map[int]int64{}
			for _, m := range got {
				if m.Offset != next[m.Partition] {
					t.Fatalf("partition %d: offset %d, expected %d", m.Partition, m.Offset, next[m.Partition])
				}
				next[m.Partition]++
			}
			if stored := b.topics["w"].parts[0].Size() + b.topics["w"].parts[1].Size(); int64(sent) != stored {
				t.Fatalf("takes sent %d bytes of batches, %d stored: some batch went twice", sent, stored)
			}
			// Caught up: a poll that finds nothing lets the memory go.
			wctx, wcancel := context.WithTimeout(bg, 20*time.Millisecond)
			defer wcancel()
			if bs, err := take(wctx, 250, &scratch); len(bs) != 0 || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("take when caught up: %d batches, %v", len(bs), err)
			}
			if scratch.buf != nil {
				t.Fatalf("an idle consumer's scratch holds %d bytes", cap(scratch.buf))
			}
		})
	}
}
