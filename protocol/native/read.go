package native

import (
	"context"
	"fmt"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
	"github.com/ferrymq/ferry/engine"
)

// readers serves ferry.v1.ReadService.
type readers struct{ s *Service }

func (h readers) Read(ctx context.Context, req *connect.Request[ferryv1.ReadRequest]) (*connect.Response[ferryv1.ReadResponse], error) {
	s := h.s
	m := req.Msg
	if m.Partition < 0 {
		return nil, invalid("partition %d is negative", m.Partition)
	}
	if m.MaxMessages < 0 || m.MaxBytes < 0 {
		return nil, invalid("max_messages and max_bytes may not be negative")
	}
	p := int(m.Partition)
	var off int64
	switch st := m.Start.(type) {
	case *ferryv1.ReadRequest_Offset:
		off = st.Offset
		if off < 0 {
			return nil, invalid("offset %d is negative", off)
		}
	case *ferryv1.ReadRequest_Time:
		o, err := s.b.OffsetForTime(m.Topic, p, fromTS(st.Time))
		if err != nil {
			return nil, toConnect(err)
		}
		off = o
	case *ferryv1.ReadRequest_Earliest, *ferryv1.ReadRequest_Latest:
		info, err := s.b.DescribeTopic(m.Topic)
		if err != nil {
			return nil, toConnect(err)
		}
		if p >= len(info.Partitions) {
			return nil, connect.NewError(connect.CodeNotFound,
				fmt.Errorf("%v: topic %q has %d partitions, no partition %d", engine.ErrUnknownPartition, m.Topic, len(info.Partitions), p))
		}
		off = info.Partitions[p].StartOffset
		if m.GetLatest() {
			off = info.Partitions[p].EndOffset
		}
	}
	maxBytes := int(m.MaxBytes)
	if maxBytes == 0 {
		maxBytes = 1 << 20
	}
	ctx, cancel := s.untilDrain(ctx)
	defer cancel()
	res, err := s.b.Read(ctx, m.Topic, p, off, engine.ReadOptions{
		MaxBytes:    min(maxBytes, s.opts.MaxReadBytes),
		MaxMessages: int(m.MaxMessages),
		Wait:        s.waitBound(fromDur(m.Wait)),
		AsBatches:   m.RecordBatches,
	})
	if err != nil {
		if s.draining() {
			return nil, errShuttingDown
		}
		return nil, toConnect(err)
	}
	resp := &ferryv1.ReadResponse{
		Messages:      messagesToProto(res.Messages),
		NextOffset:    res.NextOffset,
		HighWatermark: res.HighWatermark,
		StartOffset:   res.StartOffset,
	}
	if res.Batches.Count() > 0 {
		raw, msgs, err := splitBatches([]engine.Batches{res.Batches})
		if err != nil {
			return nil, toConnect(err)
		}
		if len(raw) > 0 {
			resp.Batches = raw[0]
		}
		resp.Messages = msgs
	}
	return connect.NewResponse(resp), nil
}
