// Package meta is Ferry's metadata store: the catalogue of topics and
// partitions, subscription positions and acknowledgements. The whole state is
// an ordered key-value map held in memory; every change is first appended to
// a change log on disk, and checkpoints of the whole map let the change log
// be cut short.
//
// # Durability
//
// Apply writes a Batch of changes atomically: after a crash either all of it
// is there or none. It offers two durabilities:
//
//   - Written returns once the change log's write() returned. The change
//     survives kill -9 (it is in the kernel's page cache) and reaches the disk
//     with the next group commit, about Options.SyncInterval later. A power
//     cut may lose the last interval. Positions and acks use this.
//   - Synced returns once an fsync covers the change (concurrent callers share
//     one fsync). Catalogue changes, such as creating a topic, use this.
//
// Readers (Get, Scan) see a change as soon as it is written, before a Synced
// Apply returns. If that fsync fails, Apply reports the error, the change
// stays visible, and whether it survives a power cut is unknown. After any
// failed fsync (a Synced Apply's, Sync's or the background one) the change
// log refuses writes, so Apply fails, until the store is reopened, which
// rebuilds the state from what is on disk. A failed write (a full disk) is
// undone instead: Apply returns the error, the map is unchanged, and the
// next Apply may succeed.
//
// # Files
//
//	DIR/changes/     the change log: a storage/log log (segments of record batches)
//	DIR/checkpoint   the latest checkpoint, replaced atomically
//
// # Change log
//
// One Apply is one record batch (package record), so the batch's CRC makes
// it all-or-nothing and Open's torn-tail recovery of storage/log drops a
// batch whose write was cut short. Each operation is one record:
//
//	operation            key      value        headers
//	Put(key, value)      key      value        none (value is never null; an empty value is empty)
//	Delete(key)          key      null         none
//	DeletePrefix(p)      p        null         one: "op" = "delprefix"
//
// Operations of a batch apply in order. Record timestamps are the time of the
// Apply and carry no meaning. A record with any other header, or a null key,
// is refused as corrupt: a newer format is not guessed at.
//
// # Checkpoint
//
// A checkpoint is the whole map as of a change-log offset: every change
// below that offset is in it, none at or above. All integers are big-endian.
//
//	offset  size  field
//	     0     9  magic          "FERRYMETA"
//	     9     1  version        1
//	    10     8  coveredOffset  first change-log offset NOT in the checkpoint
//	    18     8  entryCount     number of key-value entries
//	    26     8  bodyLength     bytes after the header
//	    34     4  headerCRC      CRC-32C (Castagnoli) of bytes 0..33
//	    38     …  body           record batches, back to back
//
// The body holds the entries in strictly ascending key order, one record
// each (key = key, value = value, never null, no headers), in uncompressed
// record batches of at most about 4 MiB (a single larger entry gets a batch
// of its own). Each batch carries its own CRC; a batch's base offset is the
// number of entries before it, so the batches are dense from 0 and
// entryCount equals the offset after the last one; its leader epoch is 0. A checkpoint is written
// to DIR/checkpoint.tmp, fsynced, renamed over DIR/checkpoint and the folder
// fsynced, so a crash leaves the old one or the new one; a checkpoint that
// fails its checks is therefore damage, and Open refuses it with ErrCorrupt
// rather than silently losing state.
//
// Checkpoint, and an automatic checkpoint once Options.CheckpointBytes of
// change log have accumulated since the last one, capture the map in O(1)
// (a copy-on-write clone of the B-tree, under the lock that orders appends)
// and write it while Apply goes on. The change log is fsynced up to
// coveredOffset before the checkpoint is written, and only once the
// checkpoint is durable may the change log's segments below coveredOffset be
// deleted.
//
// # Recovery
//
// Open loads the checkpoint, if any, and replays the change log from
// coveredOffset to its end. It refuses to open (ErrCorrupt) when the change
// log does not hold every change from coveredOffset on: a gap would mean
// silently lost acknowledgements.
package meta
