// Package report turns a ferrybench run (every run's runner.Result) into
// what bench/results/ holds: the JSON of every run, a Markdown file of
// medians over the runs that passed, with Ferry's ratios to its peers and
// the targets, and PNG charts the Markdown links.
//
// Medians leave out failed runs (an error, or a failed count check); the
// JSON keeps them, with their error, and the Markdown says how many of a
// row's runs passed.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferrymq/ferry/bench/runner"
)

// Report is what the JSON file holds.
type Report struct {
	Label   string          `json:"label"`
	Started time.Time       `json:"started"`
	Command string          `json:"command"`
	Machine Machine         `json:"machine"`
	Runs    int             `json:"runs_per_row"`
	Results []runner.Result `json:"results"`
	// Skipped lists the workload specs a system cannot run (a queue on
	// the Kafka door without consumer groups), which were not run.
	Skipped []Skipped `json:"skipped,omitempty"`
}

// Skipped is a workload spec not run on a system that cannot run it.
type Skipped struct {
	System string `json:"system"`
	Spec   string `json:"spec"`
	Reason string `json:"reason"`
}

// Machine says where the runs ran.
type Machine struct {
	CPUs     int               `json:"cpus"`
	OS       string            `json:"os"`
	Kernel   string            `json:"kernel"`
	Go       string            `json:"go"`
	Versions map[string]string `json:"versions"`
}

// Base is the result files' name without extension: LABEL-TIMESTAMP.
func (r *Report) Base() string {
	return fmt.Sprintf("%s-%s", r.Label, r.Started.UTC().Format("20060102T150405Z"))
}

// Load reads a JSON results file.
func Load(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(r.Results) == 0 {
		return nil, fmt.Errorf("%s: no results", path)
	}
	return &r, nil
}

// Files are the paths Write wrote.
type Files struct {
	JSON, Markdown string
	Charts         []string
}

// Write writes base.json (unless jsonPath is given: the results were
// read from there and stay as they are), base.md and the charts into
// dir, base being r.Base(), and returns the Markdown and the paths.
func Write(r *Report, dir, jsonPath string) (string, Files, error) {
	var f Files
	if len(r.Results) == 0 {
		return "", f, errors.New("report: no results")
	}
	base := r.Base()
	if jsonPath != "" {
		base = strings.TrimSuffix(filepath.Base(jsonPath), ".json")
		f.JSON = jsonPath
	} else {
		js, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return "", f, err
		}
		f.JSON = filepath.Join(dir, base+".json")
		if err := os.WriteFile(f.JSON, append(js, '\n'), 0o644); err != nil {
			return "", f, err
		}
	}
	charts, err := WriteCharts(Rows(r.Results), dir, base)
	if err != nil {
		return "", f, fmt.Errorf("charts: %w", err)
	}
	for _, c := range charts {
		f.Charts = append(f.Charts, filepath.Join(dir, c.File))
	}
	md := Markdown(r, charts)
	f.Markdown = filepath.Join(dir, base+".md")
	if err := os.WriteFile(f.Markdown, []byte(md), 0o644); err != nil {
		return "", f, err
	}
	return md, f, nil
}
