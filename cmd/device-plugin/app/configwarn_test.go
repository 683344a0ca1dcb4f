package app

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/klog/v2/ktesting"

	configv1 "github.com/gpupack/gpupack/pkg/config/v1"
)

// The file's warnings (a key given twice, an unknown field) are logged as
// such, not as fields without effect in gpupack; each warning once.
func TestLogConfigWarnings(t *testing.T) {
	dup := `yaml: unmarshal errors: line 3: mapping key "migStrategy" already defined at line 2: the last value is used, as in NVIDIA's plugin`
	tests := []struct {
		name           string
		file, noEffect []string
		want           []string // one line each, in order
	}{
		{name: "none"},
		{name: "duplicate key", file: []string{dup},
			want: []string{`INFO Warning: config file warning="` + strings.ReplaceAll(dup, `"`, `\"`) + `"`}},
		{name: "no effect", noEffect: []string{"flags.plugin.passDeviceSpecs: b", "flags.gdsEnabled: a", "flags.gdsEnabled: a"},
			want: []string{`INFO Config field has no effect in gpupack warning="flags.gdsEnabled: a"`,
				`INFO Config field has no effect in gpupack warning="flags.plugin.passDeviceSpecs: b"`}},
		{name: "both, the same text once", file: []string{"x: unknown field, ignored"}, noEffect: []string{"x: unknown field, ignored", "y: z"},
			want: []string{`INFO Warning: config file warning="x: unknown field, ignored"`,
				`INFO Config field has no effect in gpupack warning="y: z"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
			logConfigWarnings(logger, configv1.Warnings(tc.file), tc.noEffect)
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(logger.GetSink().(ktesting.Underlier).GetBuffer().String()), "\n") {
				if line != "" {
					got = append(got, line)
				}
			}
			require.Equal(t, tc.want, got)
		})
	}
}
