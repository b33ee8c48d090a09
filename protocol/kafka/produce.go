package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/storage/record"
)

// Produce (key 0), versions 3-9 (magic-2 record batches only): each
// partition's batches are checked (CRC, format), their records published
// to the engine in one call, and the partition answered with the first
// offset once stored (after the fsync the topic's policy asks for, for
// acks 1 and -1 alike: there are no replicas to wait for). With acks 0
// there is no response. Partitions of one request are stored
// concurrently, so they share group commits.
func handleProduce(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	ctx := c.ctx
	if req.TimeoutMillis > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
		defer cancel()
	}
	var wg sync.WaitGroup
	for _, rt := range req.Topics {
		t := kmsg.NewProduceResponseTopic()
		t.Topic = rt.Topic
		t.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		known := c.s.knownTopic(c, rt.Topic)
		for i, rp := range rt.Partitions {
			out := &t.Partitions[i]
			*out = kmsg.NewProduceResponseTopicPartition()
			out.Partition = rp.Partition
			out.LogAppendTime = -1
			switch {
			case req.TransactionID != nil:
				out.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
				out.ErrorMessage = kmsg.StringPtr("transactions are not supported")
				continue
			case known != nil:
				out.ErrorCode = errorCode(known)
				continue
			}
			wg.Go(func() { produce(ctx, c, rt.Topic, rp, out) })
		}
		resp.Topics = append(resp.Topics, t)
	}
	wg.Wait()
	if req.Acks == 0 {
		return nil, nil
	}
	return resp, nil
}

// knownTopic is nil when the topic exists (or was created on first use),
// else why not.
func (s *Server) knownTopic(c *conn, name string) error {
	_, err := s.b.DescribeTopic(name)
	if errors.Is(err, engine.ErrUnknownTopic) && s.opts.AutoCreateTopics {
		_, err = s.autoCreate(c, name)
	}
	return err
}

// produce stores one partition's batches and fills out.
func produce(ctx context.Context, c *conn, topic string, rp kmsg.ProduceRequestTopicPartition, out *kmsg.ProduceResponseTopicPartition) {
	batches, err := produceBatches(rp.Records, c.s.opts.MaxRequestBytes)
	if err == nil && len(batches) == 0 {
		err = fmt.Errorf("%w: no record batch", engine.ErrInvalidMessage)
	}
	if err != nil {
		out.ErrorCode = errorCode(err)
		out.ErrorMessage = kmsg.StringPtr(err.Error())
		return
	}
	for i, batch := range batches {
		off, err := c.s.b.PublishBatch(ctx, topic, int(rp.Partition), batch)
		if err != nil {
			// Batches before this one are stored; Kafka clients send one
			// batch per partition, so this is rare.
			out.ErrorCode = errorCode(err)
			if out.ErrorCode == kerr.UnknownServerError.Code {
				c.s.log.Warn("kafka: produce failed", "topic", topic, "partition", rp.Partition, "err", err)
			}
			out.ErrorMessage = kmsg.StringPtr(err.Error())
			return
		}
		if i == 0 {
			out.BaseOffset = off
		}
	}
	if ti, err := c.s.b.DescribeTopic(topic); err == nil && int(rp.Partition) < len(ti.Partitions) {
		out.LogStartOffset = ti.Partitions[rp.Partition].StartOffset
	}
}

// produceBatches splits a partition's records into batches and checks
// each: magic 2, a good CRC, not transactional. A compressed batch is
// inflated (to at most limit bytes) into an uncompressed one with its CRC
// set again: Ferry stores batches uncompressed, so that consumers of every
// front door read them. Uncompressed batches alias data.
func produceBatches(data []byte, limit int) ([][]byte, error) {
	var out [][]byte
	err := record.Split(data, func(h record.Header, batch []byte) error {
		if h.Transactional() || h.Control() {
			return fmt.Errorf("%w: transactional batches are not supported", engine.ErrInvalidMessage)
		}
		if h.Compression() != record.CompressionNone {
			var err error
			if batch, err = decompressed(h, batch, limit); err != nil {
				return err
			}
		}
		out = append(out, batch)
		return nil
	})
	return out, err
}

// errUnsupportedCompression: a batch compressed with a codec not served.
var errUnsupportedCompression = errors.New("unsupported compression")
