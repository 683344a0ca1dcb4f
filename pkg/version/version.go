// Package version owns gpupack's build version: the semantic version, commit
// and build date stamped into every binary at link time, their one-line form
// for --version and start-up logs, and the gpupack_build_info metric.
//
// Stamp with the linker (the Makefile and Dockerfiles do):
//
//	-ldflags "-X github.com/gpupack/gpupack/pkg/version.version=v0.2.0
//	          -X github.com/gpupack/gpupack/pkg/version.gitCommit=abc1234
//	          -X github.com/gpupack/gpupack/pkg/version.buildDate=2026-11-30T09:00:00Z"
//
// An unstamped build (go run, go test) reports v0.0.0-dev.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by -ldflags -X; see the package comment.
var (
	version   = "v0.0.0-dev"
	gitCommit = ""
	buildDate = ""
)

// Info describes one build.
type Info struct {
	// Version is a semantic version with a leading "v" (e.g. v0.2.0, v0.2.0-rc.1).
	Version string `json:"version"`
	// GitCommit is the commit the binary was built from ("" when unknown).
	GitCommit string `json:"gitCommit,omitempty"`
	// BuildDate is the build time in RFC 3339 ("" when unknown).
	BuildDate string `json:"buildDate,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"goVersion"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// Get returns this binary's build information. Without a stamped commit it
// falls back to the VCS revision Go recorded, when there is one.
func Get() Info {
	commit := gitCommit
	if commit == "" {
		commit = vcsRevision()
	}
	return Info{
		Version:   version,
		GitCommit: commit,
		BuildDate: buildDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
}

func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}

// String is the one-line form printed by every binary's --version, e.g.
// "gpupack v0.2.0 (commit abc1234, built 2026-11-30T09:00:00Z, go1.26.8 linux/amd64)".
func (i Info) String() string {
	commit, built := i.GitCommit, i.BuildDate
	if commit == "" {
		commit = "unknown"
	}
	if built == "" {
		built = "unknown"
	}
	return fmt.Sprintf("gpupack %s (commit %s, built %s, %s %s)", i.Version, commit, built, i.GoVersion, i.Platform)
}

// BuildInfoName is the metric every gpupack binary exports, always 1, with
// the build in its labels (the convention of kubernetes_build_info).
const BuildInfoName = "gpupack_build_info"

// NewCollector returns the gpupack_build_info gauge for Get(), labelled
// version, git_commit, build_date, go_version and platform; register it once
// per registry.
func NewCollector(component string) prometheus.Collector {
	i := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: BuildInfoName,
		Help: "A metric with a constant '1' value labelled by the gpupack component, version, commit, build date, Go version and platform it was built from.",
		ConstLabels: prometheus.Labels{
			"component":  component,
			"version":    i.Version,
			"git_commit": i.GitCommit,
			"build_date": i.BuildDate,
			"go_version": i.GoVersion,
			"platform":   i.Platform,
		},
	})
	g.Set(1)
	return g
}
