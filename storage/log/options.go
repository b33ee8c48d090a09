package log

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ferrymq/ferry/storage/vfs"
)

// FsyncMode says when appended bytes are forced to disk.
type FsyncMode int

const (
	// FsyncAlways: Append returns once an fsync covers its batch (group
	// commit shares one fsync among concurrent appends). The default.
	FsyncAlways FsyncMode = iota
	// FsyncInterval: Append returns after the write; a background fsync runs
	// every Fsync.Interval while there is unsynced data.
	FsyncInterval
	// FsyncNever: Append returns after the write; fsync only when a segment
	// rolls, on Sync and on Close. A power cut may lose recent appends.
	FsyncNever
)

// Fsync is a log's fsync policy.
type Fsync struct {
	Mode     FsyncMode
	Interval time.Duration // for FsyncInterval
}

// String gives the policy as ParseFsync reads it.
func (f Fsync) String() string {
	switch f.Mode {
	case FsyncAlways:
		return "always"
	case FsyncInterval:
		return "interval:" + f.Interval.String()
	case FsyncNever:
		return "never"
	}
	return fmt.Sprintf("fsync(%d)", int(f.Mode))
}

// ParseFsync reads "always", "never" or "interval:DURATION" (e.g.
// "interval:10ms").
func ParseFsync(s string) (Fsync, error) {
	switch {
	case s == "always" || s == "":
		return Fsync{Mode: FsyncAlways}, nil
	case s == "never":
		return Fsync{Mode: FsyncNever}, nil
	case strings.HasPrefix(s, "interval:"):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "interval:"))
		if err != nil {
			return Fsync{}, fmt.Errorf("fsync %q: %w", s, err)
		}
		if d <= 0 {
			return Fsync{}, fmt.Errorf("fsync %q: interval must be positive", s)
		}
		return Fsync{Mode: FsyncInterval, Interval: d}, nil
	}
	return Fsync{}, fmt.Errorf("fsync %q: want always, never or interval:DURATION", s)
}

// Options configure a log. The zero value is valid: EnsureDefaults fills
// every unset field.
type Options struct {
	// FS is the file system; vfs.Default when nil.
	FS vfs.FS
	// Fsync is the durability policy; FsyncAlways by default.
	Fsync Fsync
	// SegmentBytes rolls the active segment once it holds this many bytes.
	// Default 128 MiB, at most 1 GiB.
	SegmentBytes int64
	// SegmentAge rolls the active segment once its first append is this old.
	// Default 7 days.
	SegmentAge time.Duration
	// IndexIntervalBytes is about how many bytes of log lie between index
	// entries. Default 4096.
	IndexIntervalBytes int64
	// MaxBatchBytes is the largest batch Append accepts. Default 8 MiB.
	MaxBatchBytes int
	// MaxRecordBytes is the largest record Append accepts in an uncompressed
	// batch. Default 1 MiB.
	MaxRecordBytes int
	// Retention deletes old segments; see Retention.
	Retention Retention
	// Now is the clock, time.Now by default. Tests inject their own.
	Now func() time.Time
	// Logger receives recovery and failure reports. Discarded when nil.
	Logger *slog.Logger
	// OnFsync, when set, is told of every fsync of appended data (a
	// group-commit round, a roll, Sync, Close): how long it took, by the
	// wall clock, and its error. It runs on the goroutine that synced, with
	// the log's locks held: keep it quick and never call the log from it.
	OnFsync func(took time.Duration, err error)
}

// Retention says which whole segments EnforceRetention deletes. Zero fields
// keep data forever.
type Retention struct {
	// MaxAge deletes a segment once its newest record is older than this.
	MaxAge time.Duration
	// MaxBytes deletes the oldest segments while the log is larger than this.
	MaxBytes int64
}

const maxSegmentBytes = 1 << 30

// EnsureDefaults fills unset fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 128 << 20
	}
	if o.SegmentAge == 0 {
		o.SegmentAge = 7 * 24 * time.Hour
	}
	if o.IndexIntervalBytes == 0 {
		o.IndexIntervalBytes = 4096
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = 8 << 20
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = 1 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports the first invalid field.
func (o *Options) Validate() error {
	var errs []error
	if o.SegmentBytes < 1024 || o.SegmentBytes > maxSegmentBytes {
		errs = append(errs, fmt.Errorf("segment bytes %d outside 1 KiB..1 GiB", o.SegmentBytes))
	}
	if o.SegmentAge < 0 {
		errs = append(errs, fmt.Errorf("segment age %v is negative", o.SegmentAge))
	}
	if o.IndexIntervalBytes < 1 {
		errs = append(errs, fmt.Errorf("index interval %d must be positive", o.IndexIntervalBytes))
	}
	if o.MaxBatchBytes < 128 {
		errs = append(errs, fmt.Errorf("max batch bytes %d below 128", o.MaxBatchBytes))
	}
	if o.MaxRecordBytes < 1 {
		errs = append(errs, fmt.Errorf("max record bytes %d must be positive", o.MaxRecordBytes))
	}
	if o.Fsync.Mode < FsyncAlways || o.Fsync.Mode > FsyncNever {
		errs = append(errs, fmt.Errorf("unknown fsync mode %d", int(o.Fsync.Mode)))
	}
	if o.Fsync.Mode == FsyncInterval && o.Fsync.Interval <= 0 {
		errs = append(errs, errors.New("fsync interval must be positive"))
	}
	if o.Retention.MaxAge < 0 || o.Retention.MaxBytes < 0 {
		errs = append(errs, errors.New("retention limits must not be negative"))
	}
	return errors.Join(errs...)
}
