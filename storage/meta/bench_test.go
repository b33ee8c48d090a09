package meta

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// benchKey is a 40-byte key like a committed position: subscription,
// topic, partition.
func benchKey(i int) string {
	return fmt.Sprintf("pos/billing-worker/orders.eu.created/%03d", i%1000)
}

var benchValue = make([]byte, 16) // an offset and a timestamp

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkApplyWritten: one goroutine, one small Put per Apply, returning
// after the write (the path of every committed position and ack).
func BenchmarkApplyWritten(b *testing.B) {
	s := openStore(b, b.TempDir(), Options{})
	if len(benchKey(0)) != 40 {
		b.Fatalf("key is %d bytes", len(benchKey(0)))
	}
	var batch Batch
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		batch.Reset()
		batch.Put(benchKey(i), benchValue)
		if err := s.Apply(&batch, Written); err != nil {
			b.Fatal(err)
		}
	}
	reportOps(b)
}

// BenchmarkApplyWrittenParallel: many goroutines, one small Put per Apply.
func BenchmarkApplyWrittenParallel(b *testing.B) {
	s := openStore(b, b.TempDir(), Options{})
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var batch Batch
		for pb.Next() {
			batch.Reset()
			batch.Put(benchKey(int(n.Add(1))), benchValue)
			if err := s.Apply(&batch, Written); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOps(b)
}

// BenchmarkApplySynced: many goroutines, one small Put per Apply, each
// waiting for its fsync (group commit shares them).
func BenchmarkApplySynced(b *testing.B) {
	s := openStore(b, b.TempDir(), Options{})
	var n atomic.Int64
	b.SetParallelism(16) // fsync-bound: more waiters than CPUs, as many clients would be
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var batch Batch
		for pb.Next() {
			batch.Reset()
			batch.Put(benchKey(int(n.Add(1))), benchValue)
			if err := s.Apply(&batch, Synced); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOps(b)
}

// BenchmarkGet reads a committed position.
func BenchmarkGet(b *testing.B) {
	s := openStore(b, b.TempDir(), Options{})
	var batch Batch
	for i := range 1000 {
		batch.Put(benchKey(i), benchValue)
	}
	if err := s.Apply(&batch, Written); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := s.Get(benchKey(i)); !ok {
				b.Error("missing")
				return
			}
			i++
		}
	})
	reportOps(b)
}
