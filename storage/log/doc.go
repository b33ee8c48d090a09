// Package log is Ferry's partition log: an append-only sequence of record
// batches (package record) on local disk, with dense offsets from 0.
//
// # Files
//
// A partition is a folder of segments. A segment is three files named by the
// offset of its first record, printed as 20 decimal digits:
//
//	00000000000000000000.log        record batches, back to back, exactly as appended
//	00000000000000000000.index      sparse offset index: (relative offset, position)
//	00000000000000000000.timeindex  sparse time index: (timestamp, relative offset)
//
// An offset index entry is 8 bytes, big-endian: uint32 offset minus the
// segment's base offset, uint32 byte position of the batch with that base
// offset in the .log file. A time index entry is 12 bytes: int64 timestamp,
// uint32 relative offset, meaning "every record before this offset has a
// timestamp at or below this one". An entry of each kind is added about every
// IndexIntervalBytes of log; the time index ends with the segment's largest
// timestamp. Only the last segment (the active one) receives appends; it
// rolls to a new segment by size (SegmentBytes) and by age (SegmentAge).
// Indexes of the active segment live in memory and are written out when it
// rolls or the log closes.
//
// # Durability
//
// Append writes a batch to the active segment and, under FsyncAlways,
// returns only after an fsync covers it. One goroutine does the fsyncs:
// appends that arrive while an fsync runs share the next one (group commit).
// Readers see only durable batches under FsyncAlways, and everything written
// under the other modes, so an offset a reader saw is never reused.
//
// # Recovery
//
// Open checks the active segment batch by batch (lengths, CRC-32C, dense
// offsets) and cuts a torn or corrupt tail, reporting what it cut in the
// log's Recovery report and the logger. Indexes of older segments are checked
// for shape and rebuilt by scanning when missing or damaged. Every batch read
// is checked against its CRC before it is served.
package log
