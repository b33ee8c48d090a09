package meta

import "errors"

// Errors returned by the store. Callers test them with errors.Is; each is
// wrapped with detail. Errors of the change log (package storage/log, such as
// log.ErrWrite for a full disk) and of the file system are wrapped too.
var (
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("meta: store closed")
	// ErrBatchTooLarge: an encoded Batch exceeds Options.MaxBatchBytes.
	// Nothing was written.
	ErrBatchTooLarge = errors.New("meta: batch too large")
	// ErrCorrupt: the checkpoint or the change log is damaged or incomplete,
	// so the state cannot be rebuilt without losing changes. Open refuses to
	// open rather than run on a silently older state.
	ErrCorrupt = errors.New("meta: corrupt metadata on disk")
)
