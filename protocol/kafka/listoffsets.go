package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// The special timestamps of ListOffsets.
const (
	listLatest       = -1
	listEarliest     = -2
	listMaxTimestamp = -3
)

// ListOffsets (key 2), versions 1-7: a partition's earliest offset (-2),
// latest (-1, the high watermark), or the first offset whose timestamp is
// at or after a time (the high watermark when none is). -3 (the record
// with the largest timestamp) is answered with the last record, which is
// the same record while producers set increasing timestamps; -1 on an
// empty partition. Answers by time carry the record's own timestamp.
func handleListOffsets(c *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		t := kmsg.NewListOffsetsResponseTopic()
		t.Topic = rt.Topic
		ti, terr := c.s.b.DescribeTopic(rt.Topic)
		for _, rp := range rt.Partitions {
			p := kmsg.NewListOffsetsResponseTopicPartition()
			p.Partition = rp.Partition
			p.Timestamp = -1
			p.Offset = -1
			switch {
			case terr != nil:
				p.ErrorCode = errorCode(terr)
			case rp.Partition < 0 || int(rp.Partition) >= len(ti.Partitions):
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				pi := ti.Partitions[rp.Partition]
				switch rp.Timestamp {
				case listEarliest:
					p.Offset = pi.StartOffset
				case listLatest:
					p.Offset = pi.EndOffset
				case listMaxTimestamp:
					if pi.EndOffset > pi.StartOffset {
						p.Offset = pi.EndOffset - 1
						p.Timestamp = c.recordTime(rt.Topic, rp.Partition, p.Offset)
					}
				default:
					if rp.Timestamp < 0 {
						p.ErrorCode = kerr.InvalidRequest.Code
						break
					}
					off, err := c.s.b.OffsetForTime(rt.Topic, int(rp.Partition), time.UnixMilli(rp.Timestamp))
					if err != nil {
						p.ErrorCode = errorCode(err)
						break
					}
					if off >= pi.EndOffset {
						break // no record that new: -1, as Kafka answers
					}
					p.Offset, p.Timestamp = off, c.recordTime(rt.Topic, rp.Partition, off)
				}
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}

// recordTime is the timestamp of the record at offset (milliseconds), -1
// when it cannot be read: ListOffsets answers the record's own time, as
// Kafka does, not the time asked for.
func (c *conn) recordTime(topic string, partition int32, offset int64) int64 {
	res, err := c.s.b.Read(c.ctx, topic, int(partition), offset, engine.ReadOptions{MaxMessages: 1})
	if err != nil || len(res.Messages) == 0 {
		return -1
	}
	return res.Messages[0].Timestamp.UnixMilli()
}
