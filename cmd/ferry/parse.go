package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseDuration reads a Go duration ("90s", "1h30m") that may start with a
// number of days ("7d", "1d12h"), as retention ages are usually given.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	var days time.Duration
	hasDays := false
	if i := strings.IndexByte(body, 'd'); i > 0 {
		hasDays = true
		n, err := strconv.ParseUint(body[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: want as 90s, 15m, 2h or 7d", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		body = body[i+1:]
	}
	var rest time.Duration
	if hasDays && body != "" && (body[0] < '0' || body[0] > '9') {
		return 0, fmt.Errorf("bad duration %q: want as 90s, 15m, 2h or 7d", s)
	}
	if body != "" || !hasDays {
		d, err := time.ParseDuration(body)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: want as 90s, 15m, 2h or 7d", s)
		}
		rest = d
	}
	d := days + rest
	if neg {
		d = -d
	}
	return d, nil
}

// parseSize reads a byte count: a plain number, or with a unit: KB, MB, GB,
// TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024); B alone is
// bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.TrimSpace(t[i:])
	mult := map[string]int64{
		"": 1, "B": 1,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mult == 0 || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q: want bytes, as 1048576, 512KiB, 1GiB or 10GB", s)
	}
	return n * mult, nil
}

// parseTime reads a point in time: RFC 3339 ("2026-05-01T12:00:00Z") or a
// duration ago ("-15m", "-2h", "-1d").
func parseTime(s string, now time.Time) (time.Time, error) {
	if strings.HasPrefix(s, "-") {
		d, err := parseDuration(s)
		if err == nil {
			return now.Add(d), nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time %q: want RFC 3339 as 2026-05-01T12:00:00Z, or a duration ago as -15m", s)
	}
	return t, nil
}

// position is where a read or a seek starts: earliest, latest, an offset
// or a time. The zero position is earliest.
type position struct {
	latest bool
	offset int64 // >= 0 when an offset is given, else -1
	time   time.Time
}

func (p position) isTime() bool { return !p.time.IsZero() }

// parsePosition reads "earliest", "latest", an offset or a time (see
// parseTime).
func parsePosition(s string, now time.Time) (position, error) {
	switch s {
	case "earliest", "":
		return position{offset: -1}, nil
	case "latest":
		return position{latest: true, offset: -1}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return position{}, errors.New("an offset is 0 or more")
		}
		return position{offset: n}, nil
	}
	t, err := parseTime(s, now)
	if err != nil {
		return position{}, fmt.Errorf("bad position %q: want earliest, latest, an offset, an RFC 3339 time or a duration ago as -15m", s)
	}
	return position{offset: -1, time: t}, nil
}
