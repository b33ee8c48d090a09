package client

import (
	"context"
	"iter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// ReadOptions bound one Read. The zero value reads up to 1 MiB at once
// without waiting.
type ReadOptions struct {
	// MaxMessages bounds the messages returned; 0 is no bound but MaxBytes.
	MaxMessages int32
	// MaxBytes bounds the stored bytes read (at least one message is
	// returned when there is one); 1 MiB when 0, at most the broker's
	// limit.
	MaxBytes int32
	// Wait is how long to wait when there is no message yet (a long poll,
	// bounded by the broker's limit, 30s by default).
	Wait time.Duration
}

// ReadResult is what Read returns.
type ReadResult struct {
	Messages []Message
	// NextOffset is the offset to read next.
	NextOffset int64
	// HighWatermark is the offset the next message published will get.
	HighWatermark int64
	// StartOffset is the first offset still stored.
	StartOffset int64
}

// Read reads one partition of topic from a position, without a
// subscription: replay. OutOfRange when an offset is no longer (or not
// yet) stored; NotFound for an unknown topic or partition.
func (c *Client) Read(ctx context.Context, topic string, partition int32, from Position, opts ReadOptions) (*ReadResult, error) {
	req := &ferryv1.ReadRequest{Topic: topic, Partition: partition,
		MaxMessages: opts.MaxMessages, MaxBytes: opts.MaxBytes, Wait: durationOrNil(opts.Wait), RecordBatches: true}
	switch from.kind {
	case posEarliest:
		req.Start = &ferryv1.ReadRequest_Earliest{Earliest: true}
	case posLatest:
		req.Start = &ferryv1.ReadRequest_Latest{Latest: true}
	case posTime:
		req.Start = &ferryv1.ReadRequest_Time{Time: timestamppb.New(from.time)}
	default:
		req.Start = &ferryv1.ReadRequest_Offset{Offset: from.offset}
	}
	resp, err := call(c, ctx, c.reader.Read, req)
	if err != nil {
		return nil, err
	}
	rb := resp.GetBatches()
	out := &ReadResult{
		Messages:      make([]Message, 0, len(resp.Messages)+countRecords([]*ferryv1.RecordBatches{rb})),
		NextOffset:    resp.NextOffset,
		HighWatermark: resp.HighWatermark,
		StartOffset:   resp.StartOffset,
	}
	for _, m := range resp.Messages {
		out.Messages = append(out.Messages, fromProtoMessage(m))
	}
	if rb != nil {
		err := decodeRecordBatches(rb, func() *Message {
			out.Messages = append(out.Messages, Message{})
			return &out.Messages[len(out.Messages)-1]
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Replay iterates over one partition of topic from a position with
// successive Reads (opts bounds each). With opts.Wait zero it ends at the
// partition's end (the high watermark of the last read); with a Wait it
// follows the partition as messages are published, until ctx ends. The
// iteration ends after yielding the error that stops it; ctx ending
// stops a following Replay without an error.
func (c *Client) Replay(ctx context.Context, topic string, partition int32, from Position, opts ReadOptions) iter.Seq2[*Message, error] {
	return func(yield func(*Message, error) bool) {
		pos := from
		for {
			res, err := c.Read(ctx, topic, partition, pos, opts)
			if err != nil {
				if opts.Wait > 0 && ctx.Err() != nil {
					return
				}
				yield(nil, err)
				return
			}
			for i := range res.Messages {
				if !yield(&res.Messages[i], nil) {
					return
				}
			}
			pos = AtOffset(res.NextOffset)
			if opts.Wait == 0 && res.NextOffset >= res.HighWatermark {
				return
			}
		}
	}
}
