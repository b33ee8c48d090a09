package engine

import "github.com/ferrymq/ferry/storage/log"

// Validate reports whether CreateTopic would accept c (the name aside),
// without creating anything: a front door's dry run (Kafka's validate_only).
// An empty Fsync is taken as the default, "always".
func (c TopicConfig) Validate() error {
	_, err := c.withDefaults("always")
	return err
}

// DefaultSegmentBytes is the size at which the partition logs of a topic
// with no SegmentBytes roll to a new segment.
func DefaultSegmentBytes() int64 {
	return (&log.Options{}).EnsureDefaults().SegmentBytes
}
