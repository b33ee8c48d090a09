package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferrymq/ferry/internal/clock"
	"github.com/ferrymq/ferry/storage/vfs"
)

// Options configure a Broker. The zero value with Dir set is valid.
type Options struct {
	// Dir is the data folder. Required.
	Dir string
	// FS is the file system; vfs.Default when nil.
	FS vfs.FS
	// Clock drives every timer (retention, deadlines); the wall clock when nil.
	Clock clock.Clock
	// Logger receives operational messages. Discarded when nil.
	Logger *slog.Logger
	// Hooks receive engine events (see Hook).
	Hooks []Hook
	// DefaultFsync is the fsync policy of topics that name none: "always"
	// (the default), "never" or "interval:DURATION".
	DefaultFsync string
	// RetentionInterval is how often retention runs. Default 1 minute.
	RetentionInterval time.Duration
	// FolderCheckInterval is how often the broker checks that its data
	// folder is still the one it opened (see ErrDataFolderGone); changes to
	// the catalogue check it too. Default 1 second; negative turns the
	// periodic check off.
	FolderCheckInterval time.Duration
}

// EnsureDefaults fills unset fields and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DefaultFsync == "" {
		o.DefaultFsync = "always"
	}
	if o.RetentionInterval == 0 {
		o.RetentionInterval = time.Minute
	}
	if o.FolderCheckInterval == 0 {
		o.FolderCheckInterval = time.Second
	}
	return o
}

// Validate reports invalid fields.
func (o *Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("data folder (Dir) is required"))
	}
	if _, err := parseFsync(o.DefaultFsync); err != nil {
		errs = append(errs, err)
	}
	if o.RetentionInterval < 0 {
		errs = append(errs, fmt.Errorf("retention interval %v is negative", o.RetentionInterval))
	}
	return errors.Join(errs...)
}
