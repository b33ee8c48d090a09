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
// there is no response. Partitions of one request are decoded in turn
// (what their compressed batches inflate to counts against one budget,
// Options.MaxRequestBytes, for the whole request) and stored concurrently,
// so they share group commits. Batches of an idempotent producer
// (producer id >= 0) are checked against its sequences (producers.go):
// a retry of a batch stored is answered with its offset, not stored again.
func handleProduce(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	ctx := c.ctx
	if req.TimeoutMillis > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
		defer cancel()
	}
	budget := c.s.opts.MaxRequestBytes
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
			d, err := decodeProduce(rp.Records, &budget)
			if err != nil {
				out.ErrorCode = errorCode(err)
				out.ErrorMessage = kmsg.StringPtr(err.Error())
				continue
			}
			wg.Go(func() { produce(ctx, c, rt.Topic, rp.Partition, d, out) })
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
func produce(ctx context.Context, c *conn, topic string, partition int32, d produced, out *kmsg.ProduceResponseTopicPartition) {
	fail := func(code int16, err error) {
		out.ErrorCode = code
		out.ErrorMessage = kmsg.StringPtr(err.Error())
	}
	if len(d.msgs) == 0 {
		fail(kerr.InvalidRecord.Code, errors.New("no records"))
		return
	}
	var seqs *sequences
	if d.producerID >= 0 {
		var ok bool
		if seqs, ok = producerSequences(c, topic, partition, d.producerID, out); !ok {
			return
		}
		defer seqs.mu.Unlock()
		offset, dup, err := seqs.check(d.producerID, d.seqs)
		if err != nil {
			fail(err.(*seqError).code, err)
			return
		}
		if dup {
			out.BaseOffset = offset
			out.LogStartOffset = logStartOffset(c, topic, partition)
			return
		}
	}
	pub, err := c.s.b.PublishTo(ctx, topic, int(partition), d.msgs...)
	if err != nil {
		code := errorCode(err)
		if code == kerr.UnknownServerError.Code {
			c.s.log.Warn("kafka: produce failed", "topic", topic, "partition", partition, "err", err)
		}
		fail(code, err)
		return
	}
	if seqs != nil {
		offsets := make([]int64, len(d.seqs))
		for i, first := range d.firsts {
			offsets[i] = pub[first].Offset
		}
		seqs.record(d.seqs, offsets)
	}
	out.BaseOffset = pub[0].Offset
	out.LogStartOffset = logStartOffset(c, topic, partition)
}

// producerSequences returns the idempotent producer's state on the
// partition, locked, or answers out with why there is none.
func producerSequences(c *conn, topic string, partition int32, pid int64, out *kmsg.ProduceResponseTopicPartition) (*sequences, bool) {
	p := c.s.producers.lookup(pid)
	if p == nil {
		out.ErrorCode = kerr.UnknownProducerID.Code
		out.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("producer id %d is not known to this broker (never handed out, idle too long, or before a restart): get a new one with InitProducerId", pid))
		return nil, false
	}
	// A partition that does not exist gets no state: a client naming
	// partitions at random must not grow it.
	if ti, err := c.s.b.DescribeTopic(topic); err != nil || partition < 0 || int(partition) >= len(ti.Partitions) {
		if err == nil {
			err = fmt.Errorf("%w: topic %q has no partition %d", engine.ErrUnknownPartition, topic, partition)
		}
		out.ErrorCode = errorCode(err)
		out.ErrorMessage = kmsg.StringPtr(err.Error())
		return nil, false
	}
	return p.partition(topic, partition), true
}

// logStartOffset is the partition's first offset kept, 0 when unknown.
func logStartOffset(c *conn, topic string, partition int32) int64 {
	if ti, err := c.s.b.DescribeTopic(topic); err == nil && partition >= 0 && int(partition) < len(ti.Partitions) {
		return ti.Partitions[partition].StartOffset
	}
	return 0
}

// produced is a partition's decoded batches: their messages and, for an
// idempotent producer, each batch's sequences and its first message.
type produced struct {
	msgs       []engine.Message
	producerID int64 // -1: not idempotent
	seqs       []batchSeq
	firsts     []int // index in msgs of each batch's first message
}

// decodeProduce turns a partition's record batches into messages: each
// batch must be magic 2 with a good CRC, and all from one producer (or
// none); a compressed one is inflated, within *budget bytes, which it
// lowers by what it inflated. The records' keys, values and header values
// alias data (or the inflated copy). The reserved headers ferry-id and
// ferry-deliver-at become the message's id and delivery time, as the
// native API stores them, so a message published through one door reads
// the same through the other.
func decodeProduce(data []byte, budget *int) (produced, error) {
	d := produced{producerID: -1}
	err := record.Split(data, func(h record.Header, batch []byte) error {
		if h.Magic != record.Magic {
			return fmt.Errorf("%w: record batch magic %d, only 2 is served", record.ErrCorrupt, h.Magic)
		}
		if h.Transactional() || h.Control() {
			return fmt.Errorf("%w: transactional batches are not supported", engine.ErrInvalidMessage)
		}
		pid := max(h.ProducerID, -1)
		if len(d.firsts) > 0 && pid != d.producerID {
			return fmt.Errorf("%w: batches of producer ids %d and %d for one partition", engine.ErrInvalidMessage, d.producerID, pid)
		}
		d.producerID = pid
		if pid >= 0 {
			if h.NumRecords <= 0 {
				return fmt.Errorf("%w: idempotent batch of %d records", engine.ErrInvalidMessage, h.NumRecords)
			}
			d.seqs = append(d.seqs, batchSeq{epoch: h.ProducerEpoch, firstSeq: h.BaseSequence, count: h.NumRecords})
		}
		d.firsts = append(d.firsts, len(d.msgs))
		if h.Compression() != record.CompressionNone {
			var err error
			if batch, err = decompressed(h, batch, *budget); err != nil {
				return err
			}
			*budget -= len(batch) - record.HeaderSize
		}
		rd, err := record.NewReader(batch, record.Limits{})
		if err != nil {
			return err
		}
		var r record.Record
		for rd.Next(&r) {
			d.msgs = append(d.msgs, messageFromRecord(&r))
		}
		return rd.Err()
	})
	return d, err
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
