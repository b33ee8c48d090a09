package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

// produce stores one partition's records and fills out.
func produce(ctx context.Context, c *conn, topic string, rp kmsg.ProduceRequestTopicPartition, out *kmsg.ProduceResponseTopicPartition) {
	msgs, err := decodeProduce(rp.Records, c.s.opts.MaxRequestBytes)
	if err != nil {
		out.ErrorCode = errorCode(err)
		out.ErrorMessage = kmsg.StringPtr(err.Error())
		return
	}
	if len(msgs) == 0 {
		out.ErrorCode = kerr.InvalidRecord.Code
		out.ErrorMessage = kmsg.StringPtr("no records")
		return
	}
	pub, err := c.s.b.PublishTo(ctx, topic, int(rp.Partition), msgs...)
	if err != nil {
		out.ErrorCode = errorCode(err)
		if out.ErrorCode == kerr.UnknownServerError.Code {
			c.s.log.Warn("kafka: produce failed", "topic", topic, "partition", rp.Partition, "err", err)
		}
		out.ErrorMessage = kmsg.StringPtr(err.Error())
		return
	}
	out.BaseOffset = pub[0].Offset
	if ti, err := c.s.b.DescribeTopic(topic); err == nil && int(rp.Partition) < len(ti.Partitions) {
		out.LogStartOffset = ti.Partitions[rp.Partition].StartOffset
	}
}

// decodeProduce turns a partition's record batches into messages: each
// batch must be magic 2 with a good CRC; a compressed one is inflated, to
// at most limit bytes. The records' keys, values and
// header values alias data. The reserved headers ferry-id and
// ferry-deliver-at become the message's id and delivery time, as the
// native API stores them, so a message published through one door reads
// the same through the other.
func decodeProduce(data []byte, limit int) ([]engine.Message, error) {
	var msgs []engine.Message
	err := record.Split(data, func(h record.Header, batch []byte) error {
		if h.Magic != record.Magic {
			return fmt.Errorf("%w: record batch magic %d, only 2 is served", record.ErrCorrupt, h.Magic)
		}
		if h.Transactional() || h.Control() {
			return fmt.Errorf("%w: transactional batches are not supported", engine.ErrInvalidMessage)
		}
		if h.Compression() != record.CompressionNone {
			var err error
			if batch, err = decompressed(h, batch, limit); err != nil {
				return err
			}
		}
		rd, err := record.NewReader(batch, record.Limits{})
		if err != nil {
			return err
		}
		var r record.Record
		for rd.Next(&r) {
			msgs = append(msgs, messageFromRecord(&r))
		}
		return rd.Err()
	})
	return msgs, err
}

// errUnsupportedCompression: a batch compressed with a codec not served.
var errUnsupportedCompression = errors.New("unsupported compression")

func messageFromRecord(r *record.Record) engine.Message {
	m := engine.Message{Key: r.Key, Value: r.Value, Timestamp: time.UnixMilli(r.Timestamp)}
	for _, h := range r.Headers {
		switch h.Key {
		case "ferry-id":
			m.ID = string(h.Value)
		case "ferry-deliver-at":
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				m.DeliverAt = time.UnixMilli(ms)
			}
		default:
			m.Headers = append(m.Headers, engine.Header{Key: h.Key, Value: h.Value})
		}
	}
	return m
}
