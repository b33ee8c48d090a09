package engine

import (
	"fmt"
	"strings"
)

// MaxNameLength is the longest topic name, as Kafka's.
const MaxNameLength = 249

// ValidateTopicName reports whether name is a valid topic name: 1 to 249
// characters of A-Z a-z 0-9 . _ -, not "." or "..". Dots form the hierarchy
// that wildcard patterns match.
func ValidateTopicName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: topic name is empty", ErrInvalidName)
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("%w: topic name is %d characters, at most %d", ErrInvalidName, len(name), MaxNameLength)
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: topic name %q", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		if !nameChar(name[i]) {
			return fmt.Errorf("%w: topic name %q has %q at %d; use A-Z a-z 0-9 . _ -", ErrInvalidName, name, name[i], i)
		}
	}
	return nil
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// Pattern is a topic name or a wildcard pattern over the dot-separated
// levels of topic names: "*" matches exactly one level, ">" as the last
// level matches one or more levels. "orders.*" matches "orders.eu" but not
// "orders" or "orders.eu.created"; "orders.>" matches both of the latter two
// but not "orders".
type Pattern struct {
	text   string
	levels []string
	tail   bool // ends with ">"
	plain  bool // no wildcard at all
}

// ParsePattern checks and compiles a pattern.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("%w: empty pattern", ErrInvalidName)
	}
	if len(s) > MaxNameLength {
		return Pattern{}, fmt.Errorf("%w: pattern is %d characters, at most %d", ErrInvalidName, len(s), MaxNameLength)
	}
	p := Pattern{text: s, levels: strings.Split(s, "."), plain: true}
	for i, lv := range p.levels {
		switch {
		case lv == "":
			return Pattern{}, fmt.Errorf("%w: pattern %q has an empty level", ErrInvalidName, s)
		case lv == ">":
			if i != len(p.levels)-1 {
				return Pattern{}, fmt.Errorf("%w: pattern %q: > must be the last level", ErrInvalidName, s)
			}
			p.tail, p.plain = true, false
		case lv == "*":
			p.plain = false
		default:
			for j := 0; j < len(lv); j++ {
				if !nameChar(lv[j]) || lv[j] == '.' {
					return Pattern{}, fmt.Errorf("%w: pattern %q has %q", ErrInvalidName, s, lv[j])
				}
			}
		}
	}
	if p.tail {
		p.levels = p.levels[:len(p.levels)-1]
	}
	return p, nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.text }

// Literal reports whether the pattern has no wildcard: it names one topic.
func (p Pattern) Literal() bool { return p.plain }

// Match reports whether topic matches the pattern.
func (p Pattern) Match(topic string) bool {
	if p.plain {
		return topic == p.text
	}
	rest, more := topic, true
	for _, lv := range p.levels {
		if !more {
			return false
		}
		var cur string
		cur, rest, more = strings.Cut(rest, ".")
		if cur == "" || (lv != "*" && lv != cur) {
			return false
		}
	}
	if p.tail {
		return more && rest != ""
	}
	return !more
}
