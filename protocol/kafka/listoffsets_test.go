package kafka

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ferrymq/ferry/engine"
)

// TestListOffsets: earliest, latest, the last record (-3), and by time,
// which answers the first record at or after it with that record's own
// timestamp, or -1 when none is that new; per version served.
func TestListOffsets(t *testing.T) {
	s := testServer(t, Options{})
	for i, ms := range []int64{1000, 2000, 3000} {
		m := engine.Message{Value: []byte{byte(i)}, Timestamp: time.UnixMilli(ms)}
		if _, err := s.b.PublishTo(context.Background(), "t", 0, m); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		partition  int32
		timestamp  int64
		offset, ts int64
		code       int16
	}{
		{0, listEarliest, 0, -1, 0},
		{0, listLatest, 3, -1, 0},
		{0, listMaxTimestamp, 2, 3000, 0},
		{0, 1500, 1, 2000, 0},
		{0, 1000, 0, 1000, 0},
		{0, 5000, -1, -1, 0},
		{1, listMaxTimestamp, -1, -1, 0}, // empty partition
		{1, listLatest, 0, -1, 0},
		{9, listLatest, -1, -1, kerr.UnknownTopicOrPartition.Code},
	}
	for v := int16(1); v <= 7; v++ {
		for _, tc := range cases {
			req := kmsg.NewPtrListOffsetsRequest()
			req.SetVersion(v)
			req.ReplicaID = -1
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = "t"
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = tc.partition, tc.timestamp
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			got := call(t, s, req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
			if got.ErrorCode != tc.code || got.Offset != tc.offset || got.Timestamp != tc.ts {
				t.Errorf("v%d partition %d at %d: offset %d timestamp %d error %d; want %d, %d, %d",
					v, tc.partition, tc.timestamp, got.Offset, got.Timestamp, got.ErrorCode, tc.offset, tc.ts, tc.code)
			}
		}
	}
}
