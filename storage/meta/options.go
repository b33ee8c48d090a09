package meta

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferrymq/ferry/storage/vfs"
)

// Options configure a Store. The zero value is valid: EnsureDefaults fills
// every unset field.
type Options struct {
	// FS is the file system; vfs.Default when nil.
	FS vfs.FS
	// SyncInterval bounds how long a Written change waits for its fsync: the
	// change log opens with fsync mode interval:SyncInterval. Default 5ms.
	SyncInterval time.Duration
	// CheckpointBytes of change log written since the last checkpoint start
	// an automatic one in the background. Default 64 MiB; negative turns
	// automatic checkpoints off (Checkpoint still works).
	CheckpointBytes int64
	// SegmentBytes is the change log's segment size. Whole segments below
	// the latest checkpoint are deleted, so smaller segments free disk
	// sooner. Default 16 MiB, from 1 KiB to 1 GiB.
	SegmentBytes int64
	// MaxBatchBytes is the largest encoded Batch Apply accepts. Default
	// 64 MiB.
	MaxBatchBytes int
	// Logger receives recovery, checkpoint and failure reports. Discarded
	// when nil.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	// DefaultSyncInterval is the default Options.SyncInterval.
	DefaultSyncInterval = 5 * time.Millisecond
	// DefaultCheckpointBytes is the default Options.CheckpointBytes.
	DefaultCheckpointBytes = 64 << 20
	// DefaultSegmentBytes is the default Options.SegmentBytes.
	DefaultSegmentBytes = 16 << 20
	// DefaultMaxBatchBytes is the default Options.MaxBatchBytes.
	DefaultMaxBatchBytes = 64 << 20
)

// EnsureDefaults fills unset fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.CheckpointBytes == 0 {
		o.CheckpointBytes = DefaultCheckpointBytes
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.MaxBatchBytes == 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate reports every invalid field.
func (o *Options) Validate() error {
	var errs []error
	if o.FS == nil {
		errs = append(errs, errors.New("file system is nil"))
	}
	if o.SyncInterval <= 0 {
		errs = append(errs, fmt.Errorf("sync interval %v must be positive", o.SyncInterval))
	}
	if o.SegmentBytes < 1<<10 || o.SegmentBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("segment bytes %d outside 1 KiB..1 GiB", o.SegmentBytes))
	}
	if o.MaxBatchBytes < 1<<10 || o.MaxBatchBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("max batch bytes %d outside 1 KiB..1 GiB", o.MaxBatchBytes))
	}
	if o.Logger == nil {
		errs = append(errs, errors.New("logger is nil"))
	}
	return errors.Join(errs...)
}
