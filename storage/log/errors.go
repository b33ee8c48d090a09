package log

import "errors"

// Errors returned by the log. Callers test them with errors.Is; each is
// wrapped with detail.
var (
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("log: closed")
	// ErrOffsetOutOfRange: a read asked for an offset before the first
	// retained one or after the last visible one.
	ErrOffsetOutOfRange = errors.New("log: offset out of range")
	// ErrBatchTooLarge: an appended batch or one of its records exceeds the
	// configured limit.
	ErrBatchTooLarge = errors.New("log: batch too large")
	// ErrInvalidBatch: an appended batch is malformed (bad CRC, lengths,
	// magic, or offsets that are not dense).
	ErrInvalidBatch = errors.New("log: invalid batch")
	// ErrCorrupt: stored bytes failed their check; they are not served.
	ErrCorrupt = errors.New("log: corrupt data on disk")
	// ErrWrite: writing or syncing failed (the wrapped error says why, e.g.
	// ENOSPC). The append was not stored; the log stays consistent and the
	// next append may succeed once the cause is gone.
	ErrWrite = errors.New("log: write failed")
	// ErrFailed: the log could not undo a failed write and refuses appends
	// until it is reopened (which recovers it). Reads still work.
	ErrFailed = errors.New("log: failed, reopen to recover")
)
