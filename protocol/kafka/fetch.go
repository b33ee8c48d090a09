package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// Fetch (key 1), versions 4-12: each partition's stored record batches
// from the one holding the fetch offset, byte for byte (clients skip the
// records before their offset), up to the partition's and the request's
// byte limits but always the first batch. When the batches come to fewer
// than min_bytes it waits, up to max_wait_ms, for any of the partitions
// to get more. Fetch sessions are not kept: every response says session 0,
// so clients send full fetches.
func handleFetch(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FetchRequest)
	deadline := time.Now().Add(time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond)
	for {
		resp, size, waitOn, failed, read := fetchOnce(c, req)
		// A partition's error is answered at once, as Kafka does: the
		// client resets an offset out of range without waiting.
		if failed || size >= int(req.MinBytes) || size > 0 && req.MinBytes <= 0 || len(waitOn) == 0 || !time.Now().Before(deadline) {
			c.s.reportFetched(read)
			return resp, nil
		}
		if !c.s.waitAny(c.ctx, deadline, waitOn) {
			resp, _, _, _, read = fetchOnce(c, req)
			c.s.reportFetched(read)
			return resp, nil
		}
	}
}

// fetched is what a fetch answers of one partition: the records from the
// fetch offset on (the batches may hold earlier ones, which clients skip)
// and the bytes of the batches.
type fetched struct {
	topic           string
	messages, bytes int
}

// reportFetched tells OnFetched what a fetch answered, once per topic.
func (s *Server) reportFetched(read []fetched) {
	if s.opts.OnFetched == nil {
		return
	}
	for i := 0; i < len(read); {
		f := read[i]
		for i++; i < len(read) && read[i].topic == f.topic; i++ {
			f.messages += read[i].messages
			f.bytes += read[i].bytes
		}
		s.opts.OnFetched(f.topic, f.messages, f.bytes)
	}
}

// maxFetchBytes caps what one fetch returns, whatever the client asks
// (Kafka's fetch.max.bytes, 55 MiB): the response is built in memory.
const maxFetchBytes = 55 << 20

// waitPos is a partition a fetch waits on, at the offset it wants.
type waitPos struct {
	topic     string
	partition int
	offset    int64
}

// fetchOnce reads every partition once. It returns the response, the
// bytes of batches in it, the partitions that had nothing yet, whether a
// partition got an error, and what it read of each partition that had
// records.
func fetchOnce(c *conn, req *kmsg.FetchRequest) (resp *kmsg.FetchResponse, size int, waitOn []waitPos, failed bool, read []fetched) {
	resp = req.ResponseKind().(*kmsg.FetchResponse)
	budget := int(req.MaxBytes)
	if req.Version < 3 || budget <= 0 || budget > maxFetchBytes {
		budget = maxFetchBytes
	}
	for _, rt := range req.Topics {
		t := kmsg.NewFetchResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = rp.Partition
			p.PreferredReadReplica = -1
			// Empty, not null: librdkafka drops a whole response with a
			// null record set ("invalid MessageSetSize -1"), and sarama
			// before Fetch v12 drops the connection.
			p.RecordBatches = []byte{}
			limit := min(int(rp.PartitionMaxBytes), budget)
			if size > 0 && limit <= 0 {
				// The request's budget is spent: this partition gets
				// nothing this time, but no error.
				res, err := c.s.b.Read(c.ctx, rt.Topic, int(rp.Partition), rp.FetchOffset, engine.ReadOptions{MaxBytes: 1, MaxMessages: 1, AsBatches: true})
				p.ErrorCode = errorCode(errIfNot(err, engine.ErrOffsetOutOfRange))
				p.HighWatermark, p.LastStableOffset, p.LogStartOffset = res.HighWatermark, res.HighWatermark, res.StartOffset
				t.Partitions = append(t.Partitions, p)
				continue
			}
			res, err := c.s.b.Read(c.ctx, rt.Topic, int(rp.Partition), rp.FetchOffset, engine.ReadOptions{MaxBytes: max(limit, 1), AsBatches: true})
			p.HighWatermark, p.LastStableOffset, p.LogStartOffset = res.HighWatermark, res.HighWatermark, res.StartOffset
			if err != nil {
				p.ErrorCode, failed = errorCode(err), true
				if errors.Is(err, engine.ErrUnknownTopic) || errors.Is(err, engine.ErrUnknownPartition) {
					p.HighWatermark, p.LastStableOffset, p.LogStartOffset = -1, -1, -1
				}
				t.Partitions = append(t.Partitions, p)
				continue
			}
			if len(res.Batches.Data) > 0 {
				p.RecordBatches = res.Batches.Data
				read = append(read, fetched{rt.Topic, int(res.Batches.Until - max(res.Batches.From, rp.FetchOffset)), len(res.Batches.Data)})
			}
			if len(p.RecordBatches) == 0 {
				waitOn = append(waitOn, waitPos{rt.Topic, int(rp.Partition), rp.FetchOffset})
			}
			size += len(p.RecordBatches)
			budget -= len(p.RecordBatches)
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, size, waitOn, failed, read
}

// errIfNot drops err when it is target.
func errIfNot(err, target error) error {
	if errors.Is(err, target) {
		return nil
	}
	return err
}

// waitAny waits until one of the partitions has a record at its offset
// (true), or the deadline or ctx passes (false).
func (s *Server) waitAny(ctx context.Context, deadline time.Time, on []waitPos) bool {
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	got := make(chan struct{}, len(on))
	for _, w := range on {
		go func() {
			if s.b.WaitForOffset(wctx, w.topic, w.partition, w.offset) == nil {
				got <- struct{}{}
			}
		}()
	}
	select {
	case <-got:
		return true
	case <-wctx.Done():
		return false
	}
}
