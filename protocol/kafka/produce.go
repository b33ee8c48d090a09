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
// partition's batches are checked (CRC, format), placed in the partition's
// log as they are (engine.PublishBatchAsync; a compressed batch is
// inflated first, within one budget for the whole request,
// Options.MaxRequestBytes), and the partition answered with the first
// offset once stored (after the fsync the topic's policy asks for, for
// acks 1 and -1 alike: there are no replicas to wait for). The waiting is
// left to the connection's writer (conn.later), so the next request of
// the connection is read meanwhile and its batches join the same fsync.
// With acks 0 there is no response. Batches of an idempotent producer
// (producer id >= 0) are checked against its sequences (producers.go): a
// retry of a batch stored is answered with its offset, not stored again.
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
	var waits []func()
	for _, rt := range req.Topics {
		t := kmsg.NewProduceResponseTopic()
		t.Topic = rt.Topic
		t.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		ti, known := c.s.knownTopic(c, rt.Topic)
		for i, rp := range rt.Partitions {
			out := &t.Partitions[i]
			*out = kmsg.NewProduceResponseTopicPartition()
			out.Partition = rp.Partition
			out.LogAppendTime = -1
			switch {
			case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
				out.ErrorCode = kerr.InvalidRequiredAcks.Code
				continue
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
				setProduceErr(c, rt.Topic, rp.Partition, out, err)
				continue
			}
			if wait := produce(ctx, c, ti, rp.Partition, d, out); wait != nil {
				waits = append(waits, wait)
			}
		}
		resp.Topics = append(resp.Topics, t)
	}
	if len(waits) > 0 {
		// With acks 0 too: the wait is what tells subscribers and the
		// metrics that the batches are stored.
		c.later = func() {
			for _, w := range waits {
				w()
			}
		}
	}
	if req.Acks == 0 {
		// No answer to carry an error: as Kafka does, the connection is
		// closed after a failed produce, so the client notices. Its
		// codes are counted as if answered (those known now: a failed
		// fsync later goes unanswered and uncounted).
		c.s.countErrors(resp)
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 && c.closing == nil {
					c.closing = fmt.Errorf("produce with acks 0 to %s/%d failed: %s", t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
				}
			}
		}
		return nil, nil
	}
	return resp, nil
}

// knownTopic describes the topic (creating it on first use when that is
// on), or says why it cannot.
func (s *Server) knownTopic(c *conn, name string) (engine.TopicInfo, error) {
	ti, err := s.b.DescribeTopic(name)
	if errors.Is(err, engine.ErrUnknownTopic) && s.opts.AutoCreateTopics {
		ti, err = s.autoCreate(c, name)
	}
	return ti, err
}

// produce places one partition's batches and fills out; the func it
// returns (nil when nothing was placed) waits for them to be durable and
// fills in an error that kept them from it.
func produce(ctx context.Context, c *conn, ti engine.TopicInfo, partition int32, d produced, out *kmsg.ProduceResponseTopicPartition) func() {
	topic := ti.Name
	if len(d.batches) == 0 {
		setProduceErr(c, topic, partition, out, fmt.Errorf("%w: no record batch", engine.ErrInvalidMessage))
		return nil
	}
	var seqs *sequences
	if d.producerID >= 0 {
		var ok bool
		if seqs, ok = producerSequences(c, ti, partition, d.producerID, out); !ok {
			return nil
		}
		// Held until the batches are placed: a concurrent retry of the
		// same batches must see them recorded.
		defer seqs.mu.Unlock()
		offset, durable, dup, err := seqs.check(d.producerID, d.seqs)
		if err != nil {
			out.ErrorCode = err.(*seqError).code
			out.ErrorMessage = kmsg.StringPtr(err.Error())
			return nil
		}
		if dup {
			// A retry is answered like the first attempt: once that is
			// on disk, with its error if it never got there.
			out.BaseOffset = offset
			return func() {
				if durable != nil {
					if err := durable(); err != nil {
						setProduceErr(c, topic, partition, out, err)
						return
					}
				}
				out.LogStartOffset = logStartOffset(c, topic, partition)
			}
		}
	}
	var waits []func() error
	var offsets []int64
	for _, batch := range d.batches {
		off, wait, err := c.s.b.PublishBatchAsync(ctx, topic, int(partition), batch)
		if err != nil {
			// Batches before this one are placed; Kafka clients send one
			// batch per partition, so this is rare.
			setProduceErr(c, topic, partition, out, err)
			break
		}
		// Once: a retry's answer waits on it too, and the engine's wait
		// counts the batch in its hooks when it returns.
		offsets, waits = append(offsets, off), append(waits, sync.OnceValue(wait))
	}
	if len(offsets) == 0 {
		return nil
	}
	out.BaseOffset = offsets[0]
	if seqs != nil && len(offsets) == len(d.seqs) {
		// Recorded once placed, with how to wait for them: a retry that
		// comes before the fsync gets these offsets once they are durable.
		seqs.record(d.seqs, offsets, waits)
	}
	pid := d.producerID
	return func() {
		for _, w := range waits {
			if err := w(); err != nil && out.ErrorCode == 0 {
				setProduceErr(c, topic, partition, out, err)
			}
		}
		if out.ErrorCode != 0 && pid >= 0 {
			// Its sequences now name batches the log does not hold: a
			// retry must not be answered as stored.
			c.s.producers.drop(pid)
		}
		if out.ErrorCode == 0 {
			out.LogStartOffset = logStartOffset(c, topic, partition)
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

// producerSequences returns the idempotent producer's state on the
// partition, locked, or answers out with why there is none.
func producerSequences(c *conn, ti engine.TopicInfo, partition int32, pid int64, out *kmsg.ProduceResponseTopicPartition) (*sequences, bool) {
	p := c.s.producers.lookup(pid)
	if p == nil {
		out.ErrorCode = kerr.UnknownProducerID.Code
		out.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("producer id %d is not known to this broker (never handed out, idle too long, or before a restart): get a new one with InitProducerId", pid))
		return nil, false
	}
	// A partition that does not exist gets no state: a client naming
	// partitions at random must not grow it.
	if partition < 0 || int(partition) >= len(ti.Partitions) {
		err := fmt.Errorf("%w: topic %q has no partition %d", engine.ErrUnknownPartition, ti.Name, partition)
		out.ErrorCode = errorCode(err)
		out.ErrorMessage = kmsg.StringPtr(err.Error())
		return nil, false
	}
	return p.partition(ti.Name+"\x00"+ti.ID, partition), true
}

// logStartOffset is the partition's first offset kept, 0 when unknown.
func logStartOffset(c *conn, topic string, partition int32) int64 {
	off, err := c.s.b.StartOffset(topic, int(partition))
	if err != nil {
		return 0
	}
	return off
}

// produced is a partition's checked batches, uncompressed, and for an
// idempotent producer each batch's sequences.
type produced struct {
	batches    [][]byte
	producerID int64 // -1: not idempotent
	seqs       []batchSeq
}

// decodeProduce splits a partition's records into batches and checks
// each: magic 2, a good CRC, not transactional, all from one producer (or
// none). A compressed batch is inflated, within *budget bytes (which it
// lowers by what it inflated), into an uncompressed one with its CRC set
// again: Ferry stores batches uncompressed, so that consumers of every
// front door read them. Uncompressed batches alias data. The log checks
// the records themselves when the batch is placed.
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
		if len(d.batches) > 0 && pid != d.producerID {
			return fmt.Errorf("%w: batches of producer ids %d and %d for one partition", engine.ErrInvalidMessage, d.producerID, pid)
		}
		d.producerID = pid
		if pid >= 0 {
			if h.NumRecords <= 0 {
				return fmt.Errorf("%w: idempotent batch of %d records", engine.ErrInvalidMessage, h.NumRecords)
			}
			d.seqs = append(d.seqs, batchSeq{epoch: h.ProducerEpoch, firstSeq: h.BaseSequence, count: h.NumRecords})
		}
		if h.Compression() != record.CompressionNone {
			var err error
			if batch, err = decompressed(h, batch, *budget); err != nil {
				return err
			}
			*budget -= len(batch) - record.HeaderSize
		}
		d.batches = append(d.batches, batch)
		return nil
	})
	return d, err
}

// errUnsupportedCompression: a batch compressed with a codec not served.
var errUnsupportedCompression = errors.New("unsupported compression")
