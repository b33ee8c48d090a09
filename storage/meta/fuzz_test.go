package meta

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzCheckpointDecode checks that the checkpoint decoder never panics, that
// it reports damage as ErrCorrupt, that whatever it accepts re-encodes to a
// checkpoint with the same offset and entries, and that no proper prefix of
// an accepted checkpoint is accepted (a torn checkpoint never loads).
func FuzzCheckpointDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(checkpointMagic))
	f.Add(appendCheckpoint(nil, 0, ckptChunkBytes, entriesOf(nil)))
	f.Add(appendCheckpoint(nil, 7, ckptChunkBytes, entriesOf(sampleEntries(3))))
	f.Add(appendCheckpoint(nil, 1<<40, 64, entriesOf(sampleEntries(12))))
	damaged := appendCheckpoint(nil, 9, 64, entriesOf(sampleEntries(5)))
	damaged[len(damaged)/2] ^= 1
	f.Add(damaged)
	f.Fuzz(func(t *testing.T, data []byte) {
		covered, es, err := decodeAll(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		// The decoder accepts any chunking into batches and ignores
		// timestamps, so compare meaning, not bytes.
		again := appendCheckpoint(nil, covered, ckptChunkBytes, entriesOf(es))
		c2, es2, err := decodeAll(again)
		if err != nil || c2 != covered || len(es2) != len(es) {
			t.Fatalf("re-encoded checkpoint decodes to %d, %d entries, %v", c2, len(es2), err)
		}
		for i := range es {
			if es[i].key != es2[i].key || !bytes.Equal(es[i].value, es2[i].value) {
				t.Fatalf("entry %d changed on re-encoding", i)
			}
		}
		for n := range len(data) {
			if _, _, err := decodeCheckpoint(data[:n], func(k, v []byte) error { return nil }); err == nil {
				t.Fatalf("proper prefix of %d/%d bytes accepted", n, len(data))
			}
		}
	})
}
