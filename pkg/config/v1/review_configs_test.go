package v1

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The loop periods a config sets, at values under a second. Each in-use
// refresh lists the kubelet's PodResources API (rate-limited per node, at
// 100 requests a second shared with every other reader such as DCGM
// exporter) and may patch the Node; each recovery tick wakes the health
// loop to probe the unhealthy GPUs through NVML. A period of 1ns makes
// either a busy loop: a ticker that fires as fast as it is read (1e9 ticks
// a second asked, one goroutine spinning a core). flags.gfd.sleepInterval
// already has a floor of 1s for the same reason (each relabel applies the
// Node). Old: any positive duration was accepted.
func TestLoopIntervalsHaveAFloor(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"in-use 1ns", "publish: {inUseInterval: 1ns}", `publish.inUseInterval: Invalid value: "1ns": must be at least 1s`},
		// 999ms = 1s - 1ms: under the floor by one millisecond.
		{"in-use 999ms", "publish: {inUseInterval: 999ms}", `publish.inUseInterval: Invalid value: "999ms": must be at least 1s`},
		{"recovery 1ns", "health: {recovery: {interval: 1ns}}", `health.recovery.interval: Invalid value: "1ns": must be at least 1s`},
		{"recovery 10ms", "health: {recovery: {interval: 10ms}}", `health.recovery.interval: Invalid value: "10ms": must be at least 1s`},
		// Recovery off: the interval still paces the probes of GPUs
		// discovery could not read (Degraded), so the floor holds.
		{"recovery off, 1us", "health: {recovery: {enabled: false, interval: 1us}}", `health.recovery.interval: Invalid value: "1µs": must be at least 1s`},
		// At the floor and above: loads.
		{"in-use 1s", "publish: {inUseInterval: 1s}", ""},
		{"recovery 1s", "health: {recovery: {interval: 1s}}", ""},
		{"in-use 1h", "publish: {inUseInterval: 1h}", ""},
		// In-use publishing off: no ticker runs, but the field is checked
		// whatever inUse says, as sleepInterval is whatever oneshot says
		// (turning inUse on later keeps the value).
		{"in-use off, 1ms", "publish: {inUse: false, inUseInterval: 1ms}", `publish.inUseInterval: Invalid value: "1ms": must be at least 1s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("version: v1\n" + tt.yaml + "\n"))
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
