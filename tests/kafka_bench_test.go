package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/server"
)

// BenchmarkKafkaProduce: one franz-go client produces 128-byte and 1 KiB
// records to a topic of 4 partitions with acks=-1 (idempotent, franz-go's
// default batching, no compression), fsync=always. One op is one record
// stored and acknowledged.
func BenchmarkKafkaProduce(b *testing.B) {
	for _, size := range []int{128, 1024} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			addr := benchKafka(b, "always", "p", 4)
			kc, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("p"),
				kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(1<<20),
				kgo.ProducerLinger(time.Millisecond))
			if err != nil {
				b.Fatal(err)
			}
			defer kc.Close()
			ctx := context.Background()
			value := make([]byte, size)
			b.ResetTimer()
			for range b.N {
				kc.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						b.Error(err)
					}
				})
			}
			if err := kc.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds()/1e6, "MB/s")
		})
	}
}

// BenchmarkKafkaConsume: one franz-go client consumes a topic of 4
// partitions from the start (produced beforehand, fsync=never). One op is
// one record.
func BenchmarkKafkaConsume(b *testing.B) {
	for _, size := range []int{128, 1024} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			addr := benchKafka(b, "never", "c", 4)
			ctx := context.Background()
			prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("c"),
				kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(1<<20))
			if err != nil {
				b.Fatal(err)
			}
			value := make([]byte, size)
			for range b.N {
				prod.Produce(ctx, &kgo.Record{Value: value}, nil)
			}
			if err := prod.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			prod.Close()
			kc, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("c"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				b.Fatal(err)
			}
			defer kc.Close()
			b.ResetTimer()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			for got := 0; got < b.N; {
				fs := kc.PollFetches(cctx)
				if err := cctx.Err(); err != nil {
					b.Fatalf("consumed %d of %d: %v", got, b.N, err)
				}
				fs.EachError(func(t string, p int32, err error) { b.Fatalf("fetch %s/%d: %v", t, p, err) })
				got += fs.NumRecords()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// benchKafka starts a server with the given fsync default and a topic,
// and returns its Kafka address.
func benchKafka(b *testing.B, fsync, topic string, partitions int) string {
	b.Helper()
	cfg := server.Defaults()
	cfg.DataDir = b.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.Fsync = fsync
	s, err := server.Start(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	if _, err := s.Broker().CreateTopic(context.Background(), topic, engine.TopicConfig{Partitions: partitions}); err != nil {
		b.Fatal(err)
	}
	return s.KafkaAddr()
}
