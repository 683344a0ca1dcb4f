package version

import (
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
			info: Info{Version: "v0.0.0-dev", GoVersion: "go1.26.8", Platform: "linux/amd64"},
			want: "gpupack v0.0.0-dev (commit unknown, built unknown, go1.26.8 linux/amd64)",
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
