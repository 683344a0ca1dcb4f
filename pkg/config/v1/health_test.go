package v1

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHealthCritical: which XIDs make a GPU unhealthy under NVIDIA's health
// fields (criticalXIDs, ignoredXIDs, disabled), as the file says it.
func TestHealthCritical(t *testing.T) {
	for _, tc := range []struct {
		name     string
		file     string
		critical []uint64
		not      []uint64
	}{
		{"defaults: every XID but the application ones", "",
			[]uint64{48, 79, 94, 1, 1000}, []uint64{13, 31, 43, 45, 68, 109}},
		{"criticalXIDs all is the default", "health: {criticalXIDs: all}",
			[]uint64{48, 79, 94}, []uint64{13, 31, 43, 45, 68, 109}},
		{"criticalXIDs ALL (any case)", "health: {criticalXIDs: ALL}",
			[]uint64{48}, []uint64{13}},
		{"a list: only those", "health: {criticalXIDs: [48, 79]}",
			[]uint64{48, 79}, []uint64{94, 13, 31, 1}},
		// An application XID listed as critical is no longer skipped by
		// default (NVIDIA: the lists are the file's, no default skips).
		{"a list naming an application XID", "health: {criticalXIDs: [31, 48]}",
			[]uint64{31, 48}, []uint64{13, 94}},
		{"an empty list: none", "health: {criticalXIDs: []}",
			nil, []uint64{48, 79, 13}},
		// ignoredXIDs replaces the default list: 13 counts again.
		{"ignoredXIDs replaces the defaults", "health: {ignoredXIDs: [48], criticalXIDs: all}",
			[]uint64{13, 31, 79}, []uint64{48}},
		{"disabled: none", "health: {disabled: true}",
			nil, []uint64{48, 79, 13}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.file))
			require.NoError(t, err)
			for _, x := range tc.critical {
				require.True(t, c.Health.Critical(x), "XID %d", x)
			}
			for _, x := range tc.not {
				require.False(t, c.Health.Critical(x), "XID %d", x)
			}
		})
	}
	// A file that skips and lists the same XID is refused, as NVIDIA's.
	_, err := Parse([]byte("health: {ignoredXIDs: [48], criticalXIDs: [48]}"))
	require.ErrorContains(t, err, "health.criticalXIDs: Invalid value: 48: is skipped (ignoredXIDs/skippedXIDs) too")
	_, err = Parse([]byte("health: {criticalXIDs: some}"))
	require.ErrorContains(t, err, `want "all" or a list of XIDs`)
}

// TestHealthEnvVariables: NVIDIA's DP_DISABLE_HEALTHCHECKS and
// DP_ENABLE_HEALTHCHECKS on top of a file (Disable, then Enable, as the
// command applies them).
func TestHealthEnvVariables(t *testing.T) {
	type xids = []uint64
	for _, tc := range []struct {
		name          string
		file          string
		disableAll    bool
		disable       xids
		enableAll     bool
		enable        xids
		disabled      bool
		critical, not xids
	}{
		{name: "disable a list: skipped besides the defaults", disable: xids{48, 63},
			critical: xids{79}, not: xids{48, 63, 13}},
		{name: "disable all: no health checks", disableAll: true, disabled: true,
			not: xids{48, 79}},
		{name: "enable an application XID", enable: xids{31},
			critical: xids{31, 48}, not: xids{13}},
		{name: "enable all: every XID", enableAll: true,
			critical: xids{13, 31, 48, 109}},
		{name: "enable wins over disable", disable: xids{11}, enable: xids{11},
			critical: xids{11, 48}, not: xids{13}},
		// NVIDIA's way to choose exactly the fatal XIDs.
		{name: "disable all, enable a list: only those", disableAll: true, enable: xids{48, 79},
			critical: xids{48, 79}, not: xids{94, 13, 1}},
		{name: "disable all, enable all", disableAll: true, enableAll: true,
			critical: xids{13, 94}},
		{name: "enable adds to the file's critical list", file: "health: {criticalXIDs: [79]}", enable: xids{45},
			critical: xids{79, 45}, not: xids{48}},
		{name: "the file's ignoredXIDs plus a disabled list", file: "health: {ignoredXIDs: [94]}", disable: xids{48},
			critical: xids{13, 79}, not: xids{94, 48}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.file))
			require.NoError(t, err)
			c.Health.Disable(tc.disableAll, tc.disable)
			c.Health.Enable(tc.enableAll, tc.enable)
			SetDefaults(c)
			require.Empty(t, Validate(c))
			require.Equal(t, tc.disabled, c.Health.Disabled)
			for _, x := range tc.critical {
				require.True(t, c.Health.Critical(x), "XID %d", x)
			}
			for _, x := range tc.not {
				require.False(t, c.Health.Critical(x), "XID %d", x)
			}
		})
	}
}

func TestHealthWatches(t *testing.T) {
	c, err := Parse([]byte("health: {eventTypes: [EventTypeXidCriticalError]}"))
	require.NoError(t, err)
	require.True(t, c.Health.Watches(EventTypeXidCriticalError))
	require.False(t, c.Health.Watches(EventTypeDoubleBitEccError))
	require.True(t, Default().Health.Watches(EventTypeDoubleBitEccError), "no list: every type")
	_, err = Parse([]byte("health: {eventTypes: [EventTypeClockChange]}"))
	require.ErrorContains(t, err, `health.eventTypes[0]: Unsupported value: "EventTypeClockChange"`)
}

// TestExplicitZeroIsNotUnset: a number written 0 is the file's value, never
// taken as unset and replaced by the default: where 0 has no meaning it is
// refused with its path and what to write instead. recovery.checks: 0 was
// silently 3.
func TestExplicitZeroIsNotUnset(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantErr []string
	}{
		// The reviewer's input.
		{"recovery checks 0", "health: {recovery: {checks: 0}}",
			[]string{"health.recovery.checks: Invalid value: 0: must be at least 1", "recovery.enabled: false"}},
		{"recovery checks 0, recovery off", "health: {recovery: {enabled: false, checks: 0}}",
			[]string{"health.recovery.checks: Invalid value: 0"}},
		{"recovery checks negative", "health: {recovery: {checks: -2}}",
			[]string{"health.recovery.checks: Invalid value: -2"}},
		{"recovery checks a fraction", "health: {recovery: {checks: 1.5}}",
			[]string{"health.recovery.checks"}},
		{"recovery checks a word", "health: {recovery: {checks: three}}",
			[]string{"health.recovery.checks"}},
		{"recovery checks null is unset", "health: {recovery: {checks: null}}", nil},
		{"recovery interval 0", "health: {recovery: {interval: 0s}}",
			[]string{`health.recovery.interval: Invalid value: "0s": must be positive`}},
		{"recovery interval a bare 0", "health: {recovery: {interval: 0}}",
			[]string{"health.recovery.interval"}},
		{"in-use interval 0", "publish: {inUseInterval: 0s}",
			[]string{`publish.inUseInterval: Invalid value: "0s": must be positive`}},
		{"GFD sleep interval 0", "flags: {gfd: {sleepInterval: 0}}",
			[]string{"flags.gfd.sleepInterval", "must be positive"}},
		{"replicas 0", "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 0}]}}",
			[]string{"sharing.timeSlicing.resources[0].replicas: Invalid value: 0"}},
		{"gpupackDevices count 0", "sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: 0}]}}",
			[]string{"sharing.timeSlicing.resources[0].gpupackDevices", "must be positive"}},
		// The list's zero: an empty selection shared nothing, silently.
		{"gpupackDevices empty list", "sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: []}]}}",
			[]string{`sharing.timeSlicing.resources[0].gpupackDevices: Invalid value: "[]": selects no device`}},
		{"gpupackDevices empty list, no rename", "sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: []}]}}",
			[]string{`sharing.mps.resources[0].gpupackDevices: Invalid value: "[]": selects no device`}},
		{"gpupackDevices null is unset", "sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, gpupackDevices: null}]}}", nil},
		// XID 0 does not exist: listed, it is a slip, refused where it is written.
		{"critical XID 0", "health: {criticalXIDs: [48, 0]}",
			[]string{"health.criticalXIDs[1]: Invalid value: 0: XIDs start at 1"}},
		{"ignored XID 0", "health: {ignoredXIDs: [0]}",
			[]string{"health.ignoredXIDs[0]: Invalid value: 0: XIDs start at 1"}},
		{"skipped XID 0", "health: {skippedXIDs: [0]}",
			[]string{"health.skippedXIDs[0]: Invalid value: 0: XIDs start at 1"}},
		// Zero where it means something is kept.
		{"IMEX channel 0", "imex: {channelIDs: [0]}", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file))
			if len(tc.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tc.wantErr {
				require.ErrorContains(t, err, want)
			}
		})
	}
}

// TestRecoveryChecksKept: a number of checks given is kept, unset is 3.
func TestRecoveryChecksKept(t *testing.T) {
	for file, want := range map[string]int{
		"":                                3,
		"health: {recovery: {}}":          3,
		"health: {recovery: {checks: 1}}": 1,
		"health: {recovery: {checks: 7}}": 7,
		"health: {recovery: {checks: 3}}": 3,
		"health: {recovery: {enabled: false, checks: 2}}": 2,
	} {
		c, err := Parse([]byte(file))
		require.NoError(t, err, file)
		require.Equal(t, want, c.Health.Recovery.RequiredChecks(), file)
		require.Empty(t, Validate(c), file)
	}
}
