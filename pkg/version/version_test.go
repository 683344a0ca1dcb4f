package version

import (
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestStringNamesEveryField(t *testing.T) {
	tests := []struct {
		name string
		info Info
		want string
	}{
		{
			name: "stamped",
			info: Info{Version: "v0.2.0", GitCommit: "abc1234", BuildDate: "2026-11-30T09:00:00Z", GoVersion: "go1.26.8", Platform: "linux/arm64"},
			want: "gpupack v0.2.0 (commit abc1234, built 2026-11-30T09:00:00Z, go1.26.8 linux/arm64)",
		},
		{
			name: "unstamped",
			info: Info{Version: DevVersion, GoVersion: "go1.26.8", Platform: "linux/amd64"},
			want: "gpupack " + DevVersion + " (commit unknown, built unknown, go1.26.8 linux/amd64)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.info.String())
		})
	}
}

func TestGetUsesLinkerStamp(t *testing.T) {
	old := [3]string{version, gitCommit, buildDate}
	t.Cleanup(func() { version, gitCommit, buildDate = old[0], old[1], old[2] })
	version, gitCommit, buildDate = "v1.2.3", "deadbeef", "2026-01-02T03:04:05Z"

	i := Get()
	require.Equal(t, "v1.2.3", i.Version)
	require.Equal(t, "deadbeef", i.GitCommit)
	require.Equal(t, "2026-01-02T03:04:05Z", i.BuildDate)
	require.True(t, strings.HasPrefix(i.GoVersion, "go"), i.GoVersion)
}

func TestBuildInfoMetric(t *testing.T) {
	old := [3]string{version, gitCommit, buildDate}
	t.Cleanup(func() { version, gitCommit, buildDate = old[0], old[1], old[2] })
	version, gitCommit, buildDate = "v1.2.3", "deadbeef", "2026-01-02T03:04:05Z"

	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(NewCollector("device-plugin")))
	i := Get()
	want := `
# HELP gpupack_build_info A metric with a constant '1' value labelled by the gpupack component, version, commit, build date, Go version and platform it was built from.
# TYPE gpupack_build_info gauge
gpupack_build_info{build_date="2026-01-02T03:04:05Z",component="device-plugin",git_commit="deadbeef",go_version="` + i.GoVersion + `",platform="` + i.Platform + `",version="v1.2.3"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), BuildInfoName))
}

// An unstamped build reports the release go install recorded, or
// DevVersion: never a made-up commit pseudo-version, so `go install`,
// `go build` and `make build` of one untagged checkout agree.
func TestResolveUnstamped(t *testing.T) {
	rev := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-12-03T11:00:00Z"}}
	tests := []struct {
		name                  string
		stamp                 [3]string
		bi                    *debug.BuildInfo
		version, commit, date string
	}{
		{name: "no build info", version: DevVersion},
		{name: "go build in a checkout (devel)", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: rev},
			version: DevVersion, commit: "0123456789abcdef"},
		{name: "pseudo-version of an untagged commit", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261203110000-0123456789ab"}, Settings: rev},
			version: DevVersion, commit: "0123456789abcdef"},
		{name: "pseudo-version after a tag", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.2.1-0.20261203110000-0123456789ab"}},
			version: DevVersion},
		{name: "modified files", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0+dirty"}}, version: DevVersion},
		{name: "go install @v0.2.0", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}}, version: "v0.2.0"},
		{name: "go install @v0.3.0-rc.1", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.3.0-rc.1"}}, version: "v0.3.0-rc.1"},
		{name: "not semver", bi: &debug.BuildInfo{Main: debug.Module{Version: "latest"}}, version: DevVersion},
		{name: "stamps win", stamp: [3]string{"v1.0.0", "abc", "2026-12-01T00:00:00Z"},
			bi:      &debug.BuildInfo{Main: debug.Module{Version: "v0.2.0"}, Settings: rev},
			version: "v1.0.0", commit: "abc", date: "2026-12-01T00:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i := resolve(tc.stamp[0], tc.stamp[1], tc.stamp[2], tc.bi)
			require.Equal(t, tc.version, i.Version)
			require.Equal(t, tc.commit, i.GitCommit)
			require.Equal(t, tc.date, i.BuildDate, "the commit time is not the build time")
		})
	}
}

// The Makefile and both Dockerfiles stamp DevVersion when there is no
// release tag, as an unstamped build reports.
func TestBuildFilesDefaultToDevVersion(t *testing.T) {
	for file, want := range map[string]string{
		"../../Makefile":             "|| echo " + DevVersion + ")",
		"../../Dockerfile.plugin":    "ARG VERSION=" + DevVersion + "\n",
		"../../Dockerfile.scheduler": "ARG VERSION=" + DevVersion + "\n",
	} {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		require.Contains(t, string(b), want, file)
		require.NotRegexp(t, `v[0-9]+\.[0-9]+\.[0-9]+-dev`, strings.ReplaceAll(string(b), DevVersion, ""), "%s: another -dev version", file)
	}
}
