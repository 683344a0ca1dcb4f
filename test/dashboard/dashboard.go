// Package dashboard reads the Grafana dashboard that charts/gpupack ships,
// so that tests can check that its queries use metrics the programs
// register (each program's tests check the names of its own).
package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
)

// Path is the dashboard in the chart.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "charts", "gpupack", "dashboards", "gpupack.json")
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos *struct {
		W, H int
	} `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type board struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// metricName is a PromQL identifier that names one of gpupack's series.
var metricName = regexp.MustCompile(`\bgpupack_[a-zA-Z0-9_:]+`)

// histogramSuffixes are the series a histogram exposes besides its name.
var histogramSuffixes = []string{"_bucket", "_sum", "_count"}

// Queries returns each panel's queries (and the templating queries) by
// panel title, after checking the dashboard's shape: valid JSON, a uid and
// title, unique panel IDs, a size for every panel, at least one query per
// non-row panel, every query naming at least one gpupack metric.
func Queries(path string) (map[string][]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var b board
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if b.UID == "" || b.Title == "" {
		return nil, errors.New("dashboard without uid or title")
	}
	out := map[string][]string{}
	ids := map[int]bool{}
	var walk func([]panel) error
	walk = func(ps []panel) error {
		for _, p := range ps {
			if ids[p.ID] {
				return fmt.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				return fmt.Errorf("panel %q has no size", p.Title)
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				return fmt.Errorf("panel %q has no query", p.Title)
			}
			for _, t := range p.Targets {
				if len(metricName.FindAllString(t.Expr, -1)) == 0 {
					return fmt.Errorf("panel %q query %s names no gpupack metric: %q", p.Title, t.RefID, t.Expr)
				}
				out[p.Title] = append(out[p.Title], t.Expr)
			}
		}
		return nil
	}
	if err := walk(b.Panels); err != nil {
		return nil, err
	}
	for _, v := range b.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				out["variable "+v.Name] = append(out["variable "+v.Name], s)
			}
		}
	}
	return out, nil
}

// MetricNames returns the gpupack metric names the queries use, with a
// histogram's _bucket/_sum/_count series named by the histogram when
// isHistogram says the stripped name is one.
func MetricNames(queries map[string][]string, isHistogram func(string) bool) []string {
	seen := map[string]bool{}
	for _, qs := range queries {
		for _, q := range qs {
			for _, n := range metricName.FindAllString(q, -1) {
				for _, suf := range histogramSuffixes {
					if base, ok := strings.CutSuffix(n, suf); ok && isHistogram(base) {
						n = base
						break
					}
				}
				seen[n] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
