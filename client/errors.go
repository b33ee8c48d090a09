package client

import (
	"context"
	"errors"
	"io"
	"strings"

	"connectrpc.com/connect"

	ferryv1 "github.com/ferrymq/ferry/api/ferry/v1"
)

// Errors of the client itself. Errors from the broker are *connect.Error
// values, kept as the broker sent them: test them with connect.CodeOf (for
// example connect.CodeNotFound for an unknown topic or subscription).
var (
	// ErrClosed: the Client was closed, or the consumer was closed. Futures
	// of async publishes still unacknowledged when Close gave up resolve
	// with it.
	ErrClosed = errors.New("ferry client: closed")
	// ErrTooManyOutstanding: PublishAsync found the outstanding limit
	// (WithMaxOutstanding) reached while WithBlockOnFull(false) is set.
	ErrTooManyOutstanding = errors.New("ferry client: too many outstanding async publishes")
)

// retryable reports whether a failed stream or call may succeed when
// tried again: the broker is unreachable, restarting or shedding load.
// Errors that describe the request itself (NotFound, InvalidArgument,
// PermissionDenied, FailedPrecondition, ...) are not retryable.
func retryable(err error) bool {
	if err == nil || errors.Is(err, io.EOF) {
		// A stream the server ended without an error: attach again.
		return true
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnknown:
		// An HTTP/1.1 connection cannot carry a bidirectional stream: the
		// transport is misconfigured, and no retry will change that.
		return !strings.Contains(err.Error(), "HTTP status 505")
	case connect.CodeUnavailable, connect.CodeInternal,
		connect.CodeAborted, connect.CodeDeadlineExceeded, connect.CodeCanceled:
		return true
	}
	return false
}

// streamError turns an error reported inside a stream that goes on (a
// failed publish batch) into a *connect.Error with the code it names.
func streamError(e *ferryv1.Error) error {
	var code connect.Code
	if err := code.UnmarshalText([]byte(e.GetCode())); err != nil {
		code = connect.CodeUnknown
	}
	return connect.NewError(code, errors.New(e.GetMessage()))
}

// ctxErr prefers the context's error when it ended: a call cut short by
// the caller reports context.Canceled rather than the transport's view.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}
