package report

import (
	"fmt"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/ferrymq/ferry/bench/workload"
)

// Chart is one PNG written next to the Markdown.
type Chart struct {
	Workload string
	Size     int
	Kind     string // "throughput" or "latency"
	Title    string
	File     string // name in the results folder: BASE-WORKLOAD-SIZE-KIND.png
}

// WriteCharts draws, for every workload spec (workload and size) in
// rows, the throughput of every system (grouped bars: published and
// delivered msgs/s; a stream's append and replay msgs/s) and, for queue
// and latency workloads, its end-to-end latency percentiles (p50, p99,
// p99.9, max, on a log scale), from the medians of the runs that passed.
// A chart with nothing to show (no run passed) is left out.
func WriteCharts(rows []*Row, dir, base string) ([]Chart, error) {
	var charts []Chart
	for _, spec := range specs(rows) {
		var systems []string
		for _, rw := range spec {
			systems = append(systems, rw.System)
		}
		first := spec[0]
		name := first.Workload + " " + workload.SizeName(first.Size)
		series := []Measure{Published, Delivered}
		if first.Stream() {
			series = []Measure{Appended, Replayed}
		}
		kinds := []chartKind{{"throughput", name + ": throughput", "msgs/s", series, false}}
		if first.Pattern == string(workload.Queue) || first.Pattern == string(workload.Latency) {
			kinds = append(kinds, chartKind{"latency", name + ": end-to-end latency", "ms (log scale)", Latencies, true})
		}
		for _, k := range kinds {
			values := make([][]float64, len(k.series))
			for i, m := range k.series {
				for _, rw := range spec {
					values[i] = append(values[i], rw.Median(m))
				}
			}
			c := Chart{Workload: first.Workload, Size: first.Size, Kind: k.kind, Title: k.title,
				File: fmt.Sprintf("%s-%s-%s-%s.png", base, first.Workload, workload.SizeName(first.Size), k.kind)}
			var labels []string
			for _, m := range k.series {
				labels = append(labels, m.Name)
			}
			drawn, err := barChart(k.title+" (medians)", k.ylabel, systems, labels, values, k.log, filepath.Join(dir, c.File))
			if err != nil {
				return charts, fmt.Errorf("%s: %w", c.File, err)
			}
			if drawn {
				charts = append(charts, c)
			}
		}
	}
	return charts, nil
}

type chartKind struct {
	kind, title, ylabel string
	series              []Measure
	log                 bool
}

// specs groups rows by workload spec, in order.
func specs(rows []*Row) [][]*Row {
	var out [][]*Row
	index := map[string]int{}
	for _, rw := range rows {
		i, ok := index[rw.Spec]
		if !ok {
			i = len(out)
			index[rw.Spec] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], rw)
	}
	return out
}

// barChart draws values[series][system] as bars grouped by system into
// path, and says whether it did (not when every value is 0).
func barChart(title, ylabel string, systems, series []string, values [][]float64, logY bool, path string) (bool, error) {
	lo, hi := math.Inf(1), 0.0
	for _, vs := range values {
		for _, v := range vs {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if hi == 0 {
		return false, nil
	}
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.NominalX(systems...)
	p.Legend.Top = true
	// Categories at 0, 1, …: half a category either side keeps the
	// outer bars inside the axes and the grid under every bar.
	p.X.Min, p.X.Max = -0.5, float64(len(systems))-0.5
	p.Y.Tick.Marker = plot.TickerFunc(func(min, max float64) []plot.Tick {
		ticks := plot.DefaultTicks{}.Ticks(min, max)
		for i := range ticks {
			if ticks[i].Label != "" {
				ticks[i].Label = SI(ticks[i].Value)
			}
		}
		return ticks
	})
	grid := plotter.NewGrid()
	grid.Vertical.Width = 0
	p.Add(grid)

	width := vg.Length(max(6, 1.4*float64(len(systems))+1.5)) * vg.Inch
	group := (width - 1.5*vg.Inch) / vg.Length(len(systems))
	barW := group * 0.8 / vg.Length(len(series))
	// A log axis cannot start at 0: bars rise from a power of 10 under
	// the lowest value, as bars stacked on an undrawn base.
	floor := 0.0
	if logY {
		floor = math.Pow(10, math.Floor(math.Log10(lo)))
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	for i, name := range series {
		vals := make(plotter.Values, len(systems))
		for j := range systems {
			vals[j] = max(values[i][j]-floor, 0)
		}
		bar, err := plotter.NewBarChart(vals, barW)
		if err != nil {
			return false, err
		}
		bar.Color = plotutil.Color(i)
		bar.LineStyle.Width = 0
		offset := vg.Length(float64(i)-float64(len(series)-1)/2) * barW
		if logY {
			base, err := plotter.NewBarChart(constant(len(systems), floor), barW)
			if err != nil {
				return false, err
			}
			base.Offset = offset
			bar.StackOn(base)
		} else {
			bar.Offset = offset
		}
		p.Add(bar)
		p.Legend.Add(name, bar)
	}
	// Room above the bars for the legend.
	if logY {
		p.Y.Min, p.Y.Max = floor, hi*5
	} else {
		p.Y.Min, p.Y.Max = 0, hi*1.3
	}
	return true, p.Save(width, 4.5*vg.Inch, path)
}

func constant(n int, v float64) plotter.Values {
	out := make(plotter.Values, n)
	for i := range out {
		out[i] = v
	}
	return out
}
