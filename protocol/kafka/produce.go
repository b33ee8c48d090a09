package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
	"github.com/ferrymq/ferry/storage/record"
)

// Produce (key 0), versions 3-9 (magic-2 record batches only): each
// partition's batches are checked (CRC, format), placed in the partition's
// log as they are (engine.PublishBatchAsync), and the partition answered
// with the first offset once stored (after the fsync the topic's policy
// asks for, for acks 1 and -1 alike: there are no replicas to wait for).
// The waiting is left to the connection's writer (conn.later), so the
// next request of the connection is read meanwhile and its batches join
// the same fsync. With acks 0 there is no response.
func handleProduce(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	ctx := c.ctx
	if req.TimeoutMillis > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
		defer cancel()
	}
	var waits []func()
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
			if wait := produce(ctx, c, rt.Topic, rp, out); wait != nil {
				waits = append(waits, wait)
			}
		}
		resp.Topics = append(resp.Topics, t)
	}
	if req.Acks == 0 {
		return nil, nil
	}
	if len(waits) > 0 {
		c.later = func() {
			for _, w := range waits {
				w()
			}
		}
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

// produce places one partition's batches and fills out; the func it
// returns (nil when nothing was placed) waits for them to be durable and
// fills in an error that kept them from it.
func produce(ctx context.Context, c *conn, topic string, rp kmsg.ProduceRequestTopicPartition, out *kmsg.ProduceResponseTopicPartition) func() {
	batches, err := produceBatches(rp.Records, c.s.opts.MaxRequestBytes)
	if err == nil && len(batches) == 0 {
		err = fmt.Errorf("%w: no record batch", engine.ErrInvalidMessage)
	}
	if err != nil {
		setProduceErr(c, topic, rp.Partition, out, err)
		return nil
	}
	var waits []func() error
	for i, batch := range batches {
		off, wait, err := c.s.b.PublishBatchAsync(ctx, topic, int(rp.Partition), batch)
		if err != nil {
			// Batches before this one are placed; Kafka clients send one
			// batch per partition, so this is rare.
			setProduceErr(c, topic, rp.Partition, out, err)
			break
		}
		waits = append(waits, wait)
		if i == 0 {
			out.BaseOffset = off
		}
	}
	if len(waits) == 0 {
		return nil
	}
	return func() {
		for _, w := range waits {
			if err := w(); err != nil && out.ErrorCode == 0 {
				setProduceErr(c, topic, rp.Partition, out, err)
			}
		}
		if out.ErrorCode == 0 {
			if ti, err := c.s.b.DescribeTopic(topic); err == nil && int(rp.Partition) < len(ti.Partitions) {
				out.LogStartOffset = ti.Partitions[rp.Partition].StartOffset
			}
		}
	}
}

// setProduceErr answers a partition with err.
func setProduceErr(c *conn, topic string, p int32, out *kmsg.ProduceResponseTopicPartition, err error) {
	out.ErrorCode = errorCode(err)
	if out.ErrorCode == kerr.UnknownServerError.Code {
		c.s.log.Warn("kafka: produce failed", "topic", topic, "partition", p, "err", err)
	}
	out.ErrorMessage = kmsg.StringPtr(err.Error())
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
