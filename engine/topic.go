package engine

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ferrymq/ferry/storage/log"
)

// Defaults of a new topic.
const (
	DefaultMaxMessageBytes = 1 << 20
	DefaultDedupWindow     = 2 * time.Minute
	maxPartitions          = 10000
)

// TopicConfig is a topic's settings.
type TopicConfig struct {
	// Partitions is the number of partitions; 1 when 0.
	Partitions int `json:"partitions"`
	// Retention says when stored messages are deleted.
	Retention Retention `json:"retention"`
	// Fsync is "always", "never" or "interval:DURATION"; the broker's
	// default when empty.
	Fsync string `json:"fsync,omitempty"`
	// MaxMessageBytes is the largest message (key, value and headers);
	// DefaultMaxMessageBytes when 0.
	MaxMessageBytes int `json:"max_message_bytes"`
	// DedupWindow is how long a message id is remembered for publish
	// deduplication: DefaultDedupWindow when 0, off when negative.
	DedupWindow time.Duration `json:"dedup_window"`
	// SegmentBytes is the size at which partition log segments roll; the
	// log's default when 0.
	SegmentBytes int64 `json:"segment_bytes,omitempty"`
}

// Retention is a topic's retention policy. With none set, messages are kept
// forever.
type Retention struct {
	// MaxAge deletes messages older than this (whole segments at a time).
	MaxAge time.Duration `json:"max_age,omitempty"`
	// MaxBytes deletes the oldest messages of a partition past this size.
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// Work deletes messages once every subscription has acknowledged them
	// (the classic work queue).
	Work bool `json:"work,omitempty"`
}

// withDefaults returns the config with defaults resolved, or an error.
func (c TopicConfig) withDefaults(defaultFsync string) (TopicConfig, error) {
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.Partitions < 0 || c.Partitions > maxPartitions {
		return c, fmt.Errorf("%w: %d partitions, want 1..%d", ErrInvalidConfig, c.Partitions, maxPartitions)
	}
	if c.Fsync == "" {
		c.Fsync = defaultFsync
	}
	if _, err := parseFsync(c.Fsync); err != nil {
		return c, err
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxMessageBytes < 1 || c.MaxMessageBytes > 64<<20 {
		return c, fmt.Errorf("%w: max message bytes %d, want 1..64 MiB", ErrInvalidConfig, c.MaxMessageBytes)
	}
	switch {
	case c.DedupWindow == 0:
		c.DedupWindow = DefaultDedupWindow
	case c.DedupWindow < 0:
		c.DedupWindow = -1
	}
	if c.Retention.MaxAge < 0 || c.Retention.MaxBytes < 0 {
		return c, fmt.Errorf("%w: negative retention", ErrInvalidConfig)
	}
	if c.SegmentBytes != 0 && (c.SegmentBytes < 1024 || c.SegmentBytes > 1<<30) {
		return c, fmt.Errorf("%w: segment bytes %d, want 1 KiB..1 GiB", ErrInvalidConfig, c.SegmentBytes)
	}
	return c, nil
}

func parseFsync(s string) (log.Fsync, error) {
	f, err := log.ParseFsync(s)
	if err != nil {
		return f, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return f, nil
}

// topicRecord is a topic's entry in the catalogue (key "t/NAME").
type topicRecord struct {
	Name    string      `json:"name"`
	ID      string      `json:"id"`
	Created time.Time   `json:"created"`
	Config  TopicConfig `json:"config"`
}

const topicPrefix = "t/"

func topicKey(name string) string { return topicPrefix + name }

func newTopicID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b[:])
}

func (r topicRecord) encode() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // plain struct of strings, numbers and times
	}
	return b
}

// topic is an open topic.
type topic struct {
	rec     topicRecord
	dir     string
	parts   []*log.Log
	dedup   *dedup
	subs    map[string]*queueSub
	streams map[string]*streamSub
	// spread picks the partition of the next keyless publish call.
	spread atomic.Uint64
}

func (b *Broker) topicDir(rec topicRecord) string {
	return filepath.Join(b.opts.Dir, "topics", rec.Name+"~"+rec.ID)
}

// logOptions are the options of partition p's log, for its topic's config.
func (b *Broker) logOptions(topic string, p int, c TopicConfig) log.Options {
	fs, _ := parseFsync(c.Fsync) // checked when the config was accepted
	o := log.Options{
		FS:             b.opts.FS,
		Fsync:          fs,
		SegmentBytes:   c.SegmentBytes,
		MaxRecordBytes: c.MaxMessageBytes + recordOverhead,
		MaxBatchBytes:  max(8<<20, 2*c.MaxMessageBytes+batchOverhead),
		Now:            b.opts.Clock.Now,
		Logger:         b.opts.Logger,
	}
	if hs := b.hooks.fsync; len(hs) > 0 {
		o.OnFsync = func(took time.Duration, err error) {
			for _, h := range hs {
				h.OnFsync(topic, p, took, err)
			}
		}
	}
	if !c.Retention.Work {
		o.Retention = log.Retention{MaxAge: c.Retention.MaxAge, MaxBytes: c.Retention.MaxBytes}
	}
	return o
}

// openPartitions opens partitions [from, to) of a topic.
func (b *Broker) openPartitions(t *topic, from, to int) ([]*log.Log, error) {
	var logs []*log.Log
	for p := from; p < to; p++ {
		l, err := log.Open(filepath.Join(t.dir, strconv.Itoa(p)), b.logOptions(t.rec.Name, p, t.rec.Config))
		if err != nil {
			for _, l := range logs {
				l.Close()
			}
			return nil, fmt.Errorf("open partition %d of %s: %w", p, t.rec.Name, err)
		}
		if rep := l.Recovery(); rep.CutBytes > 0 {
			b.opts.Logger.Warn("partition recovered", "topic", t.rec.Name, "partition", p,
				"cut_from_offset", rep.CutAtOffset, "cut_bytes", rep.CutBytes, "reason", rep.CutReason)
		}
		logs = append(logs, l)
	}
	return logs, nil
}

func (t *topic) close() {
	for _, l := range t.parts {
		l.Close()
	}
}

// PartitionInfo describes one partition.
type PartitionInfo struct {
	Partition   int   `json:"partition"`
	StartOffset int64 `json:"start_offset"`
	EndOffset   int64 `json:"end_offset"` // the high watermark: next offset readers will see
	Bytes       int64 `json:"bytes"`
	Segments    int   `json:"segments"`
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Name       string          `json:"name"`
	ID         string          `json:"id"`
	Created    time.Time       `json:"created"`
	Config     TopicConfig     `json:"config"`
	Partitions []PartitionInfo `json:"partitions"`
}

func (t *topic) info() TopicInfo {
	ti := TopicInfo{Name: t.rec.Name, ID: t.rec.ID, Created: t.rec.Created, Config: t.rec.Config}
	for p, l := range t.parts {
		ti.Partitions = append(ti.Partitions, PartitionInfo{
			Partition: p, StartOffset: l.StartOffset(), EndOffset: l.VisibleOffset(),
			Bytes: l.Size(), Segments: l.SegmentCount(),
		})
	}
	return ti
}
