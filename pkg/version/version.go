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
// An unstamped build takes what the Go toolchain recorded: the module's
// release version when installed as one (go install
// github.com/gpupack/gpupack/cmd/gpusim@v0.2.0), the VCS revision and commit
// time of a build in a checkout; otherwise DevVersion, the version `make
// build` and the Dockerfiles stamp when the checkout has no release tag.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// DevVersion is the version of a build from a checkout without a release
// tag: the Makefile's and the Dockerfiles' default VERSION, and what an
// unstamped build reports when Go recorded no release version.
const DevVersion = "v0.1.0-dev"

// Set by -ldflags -X; see the package comment. Empty: not stamped.
var (
	version   = ""
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

// Get returns this binary's build information: the linker's stamps, and
// for each one missing what Go recorded in the binary (debug.ReadBuildInfo),
// as the package comment says.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, gitCommit, buildDate, bi)
}

// resolve fills the stamps left empty from bi (nil: nothing recorded).
func resolve(stampedVersion, stampedCommit, stampedDate string, bi *debug.BuildInfo) Info {
	i := Info{
		Version:   stampedVersion,
		GitCommit: stampedCommit,
		BuildDate: stampedDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if i.Version == "" {
		i.Version = DevVersion
		if bi != nil && isRelease(bi.Main.Version) {
			i.Version = bi.Main.Version
		}
	}
	if bi == nil {
		return i
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && i.GitCommit == "" {
			i.GitCommit = s.Value
		}
	}
	return i
}

// isRelease reports whether a module version Go recorded is a release (or
// pre-release) tag: not "(devel)", not a pseudo-version made up from a
// commit (v0.0.0-20261203112233-abcdef123456, which every untagged checkout
// gets since Go 1.24) and not a build of modified files (+dirty).
func isRelease(v string) bool {
	return semver.IsValid(v) && semver.Build(v) == "" && !module.IsPseudoVersion(v)
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
