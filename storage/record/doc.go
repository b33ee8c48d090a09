// Package record defines how Ferry lays out messages on disk: the record
// batch. It is byte for byte Kafka's magic-2 record batch, so the Kafka front
// door can serve Fetch straight from stored bytes and a batch produced by a
// Kafka client can be stored as it arrived (after its base offset is set).
//
// All integers are big-endian. "varint" is a zigzag-encoded variable-length
// integer (as protobuf sint64 and Go's encoding/binary.Varint).
//
// A batch (61-byte header, then the records):
//
//	offset  size  field
//	     0     8  baseOffset            offset of the first record; set by the log on append
//	     8     4  batchLength           bytes that follow this field (total size - 12)
//	    12     4  partitionLeaderEpoch  term of the leader that appended it (0 on one node)
//	    16     1  magic                 always 2
//	    17     4  crc                   CRC-32C (Castagnoli) of bytes 21..end
//	    21     2  attributes            bits 0-2 compression (0 none, 1 gzip, 2 snappy,
//	                                    3 lz4, 4 zstd), bit 3 timestamp type (0 create,
//	                                    1 log-append), bit 4 transactional, bit 5 control
//	    23     4  lastOffsetDelta       offset of the last record minus baseOffset
//	    27     8  baseTimestamp         first timestamp, milliseconds since the Unix epoch
//	    35     8  maxTimestamp          largest timestamp in the batch
//	    43     8  producerId            -1 when the producer is not idempotent
//	    51     2  producerEpoch
//	    53     4  baseSequence          sequence of the first record, for deduplication
//	    57     4  recordCount
//	    61     …  records               recordCount records, compressed as a whole when
//	                                    attributes say so
//
// The CRC does not cover baseOffset, batchLength or partitionLeaderEpoch, so
// the log can assign offsets and the replication layer can stamp its term
// without recomputing it.
//
// A record:
//
//	varint  length          bytes that follow this field
//	int8    attributes      unused, 0
//	varint  timestampDelta  timestamp minus baseTimestamp
//	varint  offsetDelta     offset minus baseOffset
//	varint  keyLength       -1 for a null key
//	bytes   key
//	varint  valueLength     -1 for a null value
//	bytes   value
//	varint  headerCount
//	headers:
//	  varint  headerKeyLength
//	  bytes   headerKey       UTF-8
//	  varint  headerValueLength  -1 for null
//	  bytes   headerValue
//
// Ferry's log requires dense offsets: in an uncompressed batch record i has
// offsetDelta i and lastOffsetDelta is recordCount-1.
package record
