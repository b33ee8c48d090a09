package meta

import (
	"bytes"
	"fmt"

	"github.com/ferrymq/ferry/storage/record"
)

// opKind is what one operation of a Batch does.
type opKind uint8

const (
	opPut opKind = iota
	opDelete
	opDeletePrefix
)

// op is one operation. value is owned by the op (copied in Put) and never
// modified afterwards, so the map may keep it.
type op struct {
	kind  opKind
	key   string
	value []byte
}

// Batch is a list of changes that Apply writes atomically and applies in
// order. The zero value is an empty batch. A Batch is not safe for concurrent
// use; it may be reused after Reset, and applied more than once.
type Batch struct {
	ops []op
}

// Put sets key to value. The value is copied: the caller may reuse it.
func (b *Batch) Put(key string, value []byte) {
	v := make([]byte, len(value))
	copy(v, value)
	b.ops = append(b.ops, op{kind: opPut, key: key, value: v})
}

// Delete removes key; deleting a missing key is not an error.
func (b *Batch) Delete(key string) {
	b.ops = append(b.ops, op{kind: opDelete, key: key})
}

// DeletePrefix removes every key that starts with prefix, such as all of a
// topic's state. An empty prefix removes every key.
func (b *Batch) DeletePrefix(prefix string) {
	b.ops = append(b.ops, op{kind: opDeletePrefix, key: prefix})
}

// Len is the number of operations in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Reset empties the batch, keeping its capacity.
func (b *Batch) Reset() {
	clear(b.ops)
	b.ops = b.ops[:0]
}

// Record header marking a DeletePrefix (see the package doc).
const (
	headerOp        = "op"
	headerDelPrefix = "delprefix"
)

var delPrefixHeaders = []record.RecordHeader{{Key: headerOp, Value: []byte(headerDelPrefix)}}

// emptyBytes is a non-null empty slice: record encodes nil as null.
var emptyBytes = []byte{}

// encodeBatch adds the batch's operations to bld, one record each.
func encodeBatch(bld *record.Builder, ops []op, nowMillis int64) {
	for i := range ops {
		o := &ops[i]
		r := record.Record{Timestamp: nowMillis, Key: []byte(o.key)}
		if len(r.Key) == 0 {
			r.Key = emptyBytes
		}
		switch o.kind {
		case opPut:
			r.Value = o.value
			if r.Value == nil {
				r.Value = emptyBytes
			}
		case opDeletePrefix:
			r.Headers = delPrefixHeaders
		}
		bld.Add(r)
	}
}

// decodeOp turns a change-log record back into an operation. The value is
// copied so the map does not pin the read buffer.
func decodeOp(r record.Record) (op, error) {
	if r.Key == nil {
		return op{}, fmt.Errorf("%w: change at offset %d has a null key", ErrCorrupt, r.Offset)
	}
	key := string(r.Key)
	switch {
	case len(r.Headers) == 0 && r.Value != nil:
		return op{kind: opPut, key: key, value: bytes.Clone(r.Value)}, nil
	case len(r.Headers) == 0:
		return op{kind: opDelete, key: key}, nil
	case len(r.Headers) == 1 && r.Headers[0].Key == headerOp &&
		string(r.Headers[0].Value) == headerDelPrefix && r.Value == nil:
		return op{kind: opDeletePrefix, key: key}, nil
	}
	return op{}, fmt.Errorf("%w: change at offset %d has an unknown operation (headers %v)", ErrCorrupt, r.Offset, headerNames(r.Headers))
}

func headerNames(hs []record.RecordHeader) []string {
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Key
	}
	return names
}
