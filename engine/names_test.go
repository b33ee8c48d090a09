package engine

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTopicName(t *testing.T) {
	for _, ok := range []string{"a", "orders.eu.created", "A-b_c.9", strings.Repeat("x", 249)} {
		if err := ValidateTopicName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a b", "a/b", "é", "a*", "a>", strings.Repeat("x", 250)} {
		if err := ValidateTopicName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		pattern, topic string
		want           bool
	}{
		{"orders", "orders", true},
		{"orders", "orders.eu", false},
		{"orders.*", "orders.eu", true},
		{"orders.*", "orders", false},
		{"orders.*", "orders.eu.created", false},
		{"orders.*", "orders.", false},
		{"orders.>", "orders.eu", true},
		{"orders.>", "orders.eu.created", true},
		{"orders.>", "orders", false},
		{"orders.>", "orders.", false},
		{"*.eu.*", "orders.eu.created", true},
		{"*.eu.*", "orders.us.created", false},
		{"*.eu.>", "orders.eu.created.v2", true},
		{"*", "orders", true},
		{"*", "orders.eu", false},
		{">", "orders", true},
		{">", "orders.eu.x", true},
		{"*.*", "a.b", true},
		{"*.*", "a..b", false},
		{"a.*.c", "a..c", false},
		{"orders.eu", "orders.eu", true},
		{"orders.eu", "orders.euro", false},
	}
	for _, c := range cases {
		p, err := ParsePattern(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		if got := p.Match(c.topic); got != c.want {
			t.Errorf("%q.Match(%q) = %v, want %v", c.pattern, c.topic, got, c.want)
		}
	}
	for _, bad := range []string{"", "a..b", "a.>.b", ".a", "a.", "a b", "a*b", strings.Repeat("x", 250)} {
		if _, err := ParsePattern(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("pattern %q accepted (%v)", bad, err)
		}
	}
}

// matchByLevels is a slow, obviously correct matcher for the fuzz test.
func matchByLevels(pattern, topic string) bool {
	pl, tl := strings.Split(pattern, "."), strings.Split(topic, ".")
	for i, lv := range pl {
		if lv == ">" {
			return i == len(pl)-1 && len(tl) > i && strings.Join(tl[i:], ".") != ""
		}
		if i >= len(tl) || tl[i] == "" || (lv != "*" && lv != tl[i]) {
			return false
		}
	}
	return len(tl) == len(pl)
}

// FuzzPatternMatch: the matcher never panics and agrees with matchByLevels.
func FuzzPatternMatch(f *testing.F) {
	f.Add("orders.*", "orders.eu")
	f.Add("orders.>", "orders.eu.x")
	f.Add("*.eu.>", "a.eu.b.c")
	f.Add("a", "a")
	f.Add(">", "a..b")
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		p, err := ParsePattern(pattern)
		if err != nil || ValidateTopicName(topic) != nil {
			return
		}
		if got, want := p.Match(topic), matchByLevels(pattern, topic); got != want {
			t.Fatalf("%q.Match(%q) = %v, slow matcher says %v", pattern, topic, got, want)
		}
	})
}
