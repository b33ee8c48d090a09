package meta

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// kv is one entry of a dumped state.
type kv struct {
	Key   string
	Value string
}

// openStore opens a store and closes it when the test ends.
func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// mustApply applies a batch built by fill.
func mustApply(t testing.TB, s *Store, d Durability, fill func(b *Batch)) {
	t.Helper()
	var b Batch
	fill(&b)
	if err := s.Apply(&b, d); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// dump returns the whole state in scan order.
func dump(s *Store) []kv {
	var out []kv
	s.Scan("", func(k string, v []byte) bool {
		out = append(out, kv{k, string(v)})
		return true
	})
	return out
}

// checkSameState fails unless got equals want, describing the first difference.
func checkSameState(t testing.TB, got, want []kv) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := 0; i < min(len(got), len(want)); i++ {
		if got[i] != want[i] {
			t.Fatalf("state differs at entry %d: got %q=%q, want %q=%q (got %d entries, want %d)",
				i, got[i].Key, got[i].Value, want[i].Key, want[i].Value, len(got), len(want))
		}
	}
	t.Fatalf("state has %d entries, want %d", len(got), len(want))
}

// checkSorted fails unless the dump is strictly ascending by key.
func checkSorted(t testing.TB, d []kv) {
	t.Helper()
	for i := 1; i < len(d); i++ {
		if d[i-1].Key >= d[i].Key {
			t.Fatalf("scan out of order at %d: %q then %q", i, d[i-1].Key, d[i].Key)
		}
	}
}

// model is a plain map that replays the same operations, for comparison.
type model map[string]string

func (m model) apply(b *Batch) {
	for _, o := range b.ops {
		switch o.kind {
		case opPut:
			m[o.key] = string(o.value)
		case opDelete:
			delete(m, o.key)
		case opDeletePrefix:
			for k := range m {
				if len(k) >= len(o.key) && k[:len(o.key)] == o.key {
					delete(m, k)
				}
			}
		}
	}
}

func (m model) dump() []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	slices.SortFunc(out, func(a, b kv) int { return bytes.Compare([]byte(a.Key), []byte(b.Key)) })
	return out
}

func key(format string, args ...any) string { return fmt.Sprintf(format, args...) }
