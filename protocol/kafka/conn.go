package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// conn is one client connection. Its requests are read and handled one at
// a time, in order, as Kafka does, but a handler may leave part of its work
// to finish later (a produce places its batches in the logs, then waits for
// their fsync): the connection then goes on to the next request while the
// writer waits, and responses still go out in the order asked. So the
// requests a client pipelines on one connection (franz-go sends up to 5
// produce requests at once) share fsyncs instead of each waiting for its
// own.
type conn struct {
	s      *Server
	nc     net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	ctx    context.Context
	cancel context.CancelFunc
	apis   map[int16]api

	clientID string
	buf      []byte // the request being read
	out      []byte // the response being written
	later    func() // set by a handler: to run before its response is written
	closing  error  // set by a handler: end the connection after this request
}

// keepRequestBytes is the largest request buffer a connection keeps for
// the next request. A producer's requests are up to a MiB per partition
// (franz-go's and librdkafka's default batch size): growing a buffer anew
// for each cost a tenth of the broker's CPU in the produce benchmark.
const keepRequestBytes = 16 << 20

// maxPipelined bounds the responses a connection holds, finished or
// waiting, before it reads the next request.
const maxPipelined = 16

// reply is a response on its way: wait (nil for none) runs first, then
// resp (nil for none: a produce with acks 0) is written.
type reply struct {
	h    header
	resp kmsg.Response
	wait func()
}

func newConn(s *Server, nc net.Conn) *conn {
	return newConnIO(s, nc, nc, nc)
}

// newConnIO is a conn that reads requests from r and writes responses to
// w; nc is the network connection they come from, nil in tests that feed
// bytes to it without a network.
func newConnIO(s *Server, nc net.Conn, r io.Reader, w io.Writer) *conn {
	c := &conn{s: s, nc: nc, r: bufio.NewReaderSize(r, 64<<10), w: bufio.NewWriterSize(w, 64<<10), apis: s.apis()}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	return c
}

// header is a request header (v1, or v2 with tagged fields when the
// request's version is flexible).
type header struct {
	key, version int16
	correlation  int32
	clientID     string
}

// errFrame ends a connection whose bytes are not Kafka requests: there is
// no telling where its next request would start.
var errFrame = errors.New("bad frame")

func (c *conn) serve() {
	defer c.nc.Close()
	defer c.cancel()
	replies := make(chan reply, maxPipelined)
	written := make(chan struct{})
	go func() {
		defer close(written)
		c.writeLoop(replies)
	}()
	defer func() {
		close(replies)
		<-written // what was answered before the end goes out
	}()
	for {
		r, err := c.readOne()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && c.ctx.Err() == nil {
				c.s.log.Info("kafka: closing connection", "remote", c.nc.RemoteAddr().String(), "client_id", c.clientID, "err", err)
			}
			return
		}
		replies <- r // the writer drains until the channel closes
		if c.closing != nil {
			c.s.log.Info("kafka: closing connection", "remote", c.nc.RemoteAddr().String(), "client_id", c.clientID, "err", c.closing)
			return
		}
	}
}

// stopWriteGrace bounds how long a stopped connection may take to write
// the answers it owes.
const stopWriteGrace = 5 * time.Second

// stop ends the connection gracefully: the reader stops at once (its wait
// for the next request ends), the writer answers what was read, within
// stopWriteGrace, and serve closes the connection.
func (c *conn) stop() {
	if c.nc == nil {
		return
	}
	now := time.Now()
	c.nc.SetReadDeadline(now)
	c.nc.SetWriteDeadline(now.Add(stopWriteGrace))
}

// writeLoop writes the replies in order, each once its wait is over,
// flushing when no other reply is ready. After a write fails it only
// drains (the connection is being closed).
func (c *conn) writeLoop(replies <-chan reply) {
	failed := false
	for r := range replies {
		if r.wait != nil {
			r.wait()
		}
		if failed || r.resp == nil {
			continue
		}
		err := c.write(r.h, r.resp)
		if err == nil && len(replies) == 0 {
			err = c.w.Flush()
		}
		if err != nil {
			failed = true
			c.cancel()
			c.nc.Close() // ends the reader's wait for the next request
		}
	}
	if !failed {
		c.w.Flush()
	}
}

// readOne reads one request and handles it.
func (c *conn) readOne() (reply, error) {
	var size [4]byte
	if _, err := io.ReadFull(c.r, size[:]); err != nil {
		return reply{}, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 8 || int(n) > c.s.opts.MaxRequestBytes {
		return reply{}, fmt.Errorf("%w: request of %d bytes (limit %d)", errFrame, n, c.s.opts.MaxRequestBytes)
	}
	var err error
	if c.buf, err = readFrame(c.r, c.buf[:0], int(n)); err != nil {
		return reply{}, err
	}
	h, body, err := c.parseHeader(c.buf)
	if err != nil {
		return reply{}, err
	}
	c.clientID = h.clientID
	c.later, c.closing = nil, nil
	resp, err := c.dispatch(h, body)
	if h.key != kmsg.Produce.Int16() || cap(c.buf) > keepRequestBytes {
		// Only a produce's buffer is reused: its batches are in the log
		// once it returns. Another request's decoded fields (a group
		// member's metadata, say) may point into its buffer and outlive it.
		// And a huge produce's memory is not kept by an idle connection.
		c.buf = nil
	}
	if err != nil {
		return reply{}, err
	}
	return reply{h: h, resp: resp, wait: c.later}, nil
}

// readFrame appends n bytes from r to buf. Past what buf holds, it grows
// as the bytes arrive rather than by the size announced, so a client that
// announces a large request and sends little holds little memory.
func readFrame(r io.Reader, buf []byte, n int) ([]byte, error) {
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), max(len(buf), 64<<10)))
		}
		k, err := r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+k]
		if err != nil && len(buf) < n {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

// parseHeader splits a request into its header and body.
func (c *conn) parseHeader(b []byte) (header, []byte, error) {
	h := header{
		key:         int16(binary.BigEndian.Uint16(b[0:])),
		version:     int16(binary.BigEndian.Uint16(b[2:])),
		correlation: int32(binary.BigEndian.Uint32(b[4:])),
	}
	b = b[8:]
	if len(b) < 2 {
		return h, nil, fmt.Errorf("%w: header ends before the client id", errFrame)
	}
	if l := int16(binary.BigEndian.Uint16(b)); l >= 0 {
		if len(b) < 2+int(l) {
			return h, nil, fmt.Errorf("%w: client id of %d bytes, %d left", errFrame, l, len(b)-2)
		}
		h.clientID = string(b[2 : 2+l])
		b = b[2+l:]
	} else {
		b = b[2:]
	}
	if req := kmsg.RequestForKey(h.key); req != nil && h.version >= 0 && h.version <= req.MaxVersion() {
		req.SetVersion(h.version)
		if req.IsFlexible() {
			rest, err := skipTags(b)
			if err != nil {
				return h, nil, fmt.Errorf("%w: request header tags: %v", errFrame, err)
			}
			b = rest
		}
	}
	return h, b, nil
}

// skipTags skips a tagged-field section (KIP-482).
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("bad tag count")
	}
	b = b[k:]
	for range n {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, errors.New("bad tag")
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < size {
			return nil, errors.New("bad tag size")
		}
		b = b[k+int(size):]
	}
	return b, nil
}

// dispatch decodes the body and runs the API's handler. A request whose
// key or version is not served gets UNSUPPORTED_VERSION.
func (c *conn) dispatch(h header, body []byte) (kmsg.Response, error) {
	a, ok := c.apis[h.key]
	if !ok || h.version < a.min || h.version > a.max {
		return c.unsupported(h)
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("%w: %s v%d: %v", errFrame, kmsg.NameForKey(h.key), h.version, err)
	}
	return a.handle(c, req)
}

// unsupported answers a key or version not served. ApiVersions answers at
// version 0 with the versions served, so the client can pick one (as
// Kafka does); others get their response with UNSUPPORTED_VERSION as the
// top-level error when the response has one, and nothing in their lists
// otherwise. A version beyond what the codec knows cannot be answered in
// its own format: that connection is closed.
func (c *conn) unsupported(h header) (kmsg.Response, error) {
	if h.key == kmsg.ApiVersions.Int16() {
		resp := c.apiVersions()
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		resp.SetVersion(0)
		return resp, nil
	}
	req := kmsg.RequestForKey(h.key)
	if req == nil || h.version < 0 || h.version > req.MaxVersion() {
		return nil, fmt.Errorf("%w: api key %d version %d is not one this broker knows", errFrame, h.key, h.version)
	}
	resp := req.ResponseKind()
	resp.SetVersion(h.version)
	if f := reflect.ValueOf(resp).Elem().FieldByName("ErrorCode"); f.IsValid() && f.Kind() == reflect.Int16 {
		f.SetInt(int64(kerr.UnsupportedVersion.Code))
	}
	c.s.log.Debug("kafka: unsupported request", "api", kmsg.NameForKey(h.key), "version", h.version, "client_id", c.clientID)
	return resp, nil
}

// write buffers resp: its size, the correlation id, the header's tagged
// fields when flexible (never for ApiVersions), then the body. Its error
// codes are counted here, once its wait is over: a produce's codes are
// final only after the fsync it waited on.
func (c *conn) write(h header, resp kmsg.Response) error {
	c.s.countErrors(resp)
	out := append(c.out[:0], 0, 0, 0, 0)
	out = binary.BigEndian.AppendUint32(out, uint32(h.correlation))
	if resp.IsFlexible() && resp.Key() != kmsg.ApiVersions.Int16() {
		out = append(out, 0)
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	c.out = out
	if cap(c.out) > 1<<20 {
		c.out = nil // nor a large fetch's
	}
	_, err := c.w.Write(out)
	return err
}
