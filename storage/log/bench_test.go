package log

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/ferrymq/ferry/storage/record"
)

// benchBatch is a batch of n records with 128-byte values.
func benchBatch(n int) []byte {
	var b record.Builder
	v := make([]byte, 128)
	ts := time.Now().UnixMilli()
	for range n {
		b.Add(record.Record{Timestamp: ts, Value: v})
	}
	return b.Build()
}

func reportRecords(b *testing.B, perOp int) {
	b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAppend appends 128-byte records from one appender, one batch of
// size records per Append.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []string{"never", "always"} {
		for _, size := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("fsync=%s/batch=%d", mode, size), func(b *testing.B) {
				fs, _ := ParseFsync(mode)
				l := openT(b, b.TempDir(), Options{Fsync: fs})
				defer l.Close()
				batch := benchBatch(size)
				b.SetBytes(int64(len(batch)))
				b.ResetTimer()
				for b.Loop() {
					if _, err := l.Append(batch); err != nil {
						b.Fatal(err)
					}
				}
				reportRecords(b, size)
			})
		}
	}
}

// BenchmarkAppendConcurrent appends one 128-byte record per Append from 64
// goroutines with fsync=always: group commit shares each fsync.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, size := range []int{1, 10} {
		b.Run(fmt.Sprintf("appenders=64/batch=%d", size), func(b *testing.B) {
			l := openT(b, b.TempDir(), Options{})
			defer l.Close()
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0))) // 64 goroutines
			b.SetBytes(int64(len(benchBatch(size))))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				batch := benchBatch(size)
				for pb.Next() {
					if _, err := l.Append(batch); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportRecords(b, size)
		})
	}
}

// BenchmarkReadSequential reads a log of 128-byte records from the start,
// 1 MiB per Read, and decodes every record.
func BenchmarkReadSequential(b *testing.B) {
	const batches, per = 2000, 100
	l := openT(b, b.TempDir(), Options{Fsync: Fsync{Mode: FsyncNever}})
	defer l.Close()
	batch := benchBatch(per)
	for range batches {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(l.Size())
	b.ResetTimer()
	records := 0
	for b.Loop() {
		for off := int64(0); off < l.EndOffset(); {
			res, err := l.Read(off, 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			record.Split(res.Data, func(h record.Header, bb []byte) error {
				return record.Records(bb, record.Limits{}, func(record.Record) error {
					records++
					return nil
				})
			})
			off = res.NextOffset
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
