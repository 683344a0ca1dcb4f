package v1

import (
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/require"
)

// TestUserNVIDIAConfigsAccepted loads NVIDIA k8s-device-plugin configs as
// users write them (the GPU Operator's docs, issue reports, hand-written
// YAML and JSON) and checks the meaning NVIDIA's plugin gives each: the MIG
// strategy, the section in force, and per resource its name, replicas and
// the name its replicas are advertised under (name, or name.shared with
// renameByDefault; NVIDIA ignores rename and devices).
func TestUserNVIDIAConfigsAccepted(t *testing.T) {
	type res struct {
		name, target string
		replicas     int
	}
	tests := []struct {
		name   string
		file   string
		mig    string
		mps    bool
		fail   bool // failRequestsGreaterThanOne in force
		res    []res
		warned []string // fields with a warning
	}{
		{name: "GPU Operator time-slicing", mig: "none", res: []res{{"nvidia.com/gpu", "nvidia.com/gpu", 4}}, file: `
version: v1
flags:
  migStrategy: none
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      replicas: 4
`},
		{name: "every NVIDIA flag of a typical file", mig: "none", res: []res{{"nvidia.com/gpu", "nvidia.com/gpu", 10}}, file: `
version: v1
flags:
  migStrategy: "none"
  failOnInitError: true
  nvidiaDriverRoot: "/"
  plugin:
    passDeviceSpecs: false
    deviceListStrategy: "envvar"
    deviceIDStrategy: "uuid"
  gfd:
    oneshot: false
    noTimestamp: false
    outputFile: /etc/kubernetes/node-feature-discovery/features.d/gfd
    sleepInterval: 60s
sharing:
  timeSlicing:
    renameByDefault: false
    failRequestsGreaterThanOne: false
    resources:
      - name: nvidia.com/gpu
        replicas: 10
`},
		{name: "renameByDefault and fail > 1", mig: "none", fail: true,
			res: []res{{"nvidia.com/gpu", "nvidia.com/gpu.shared", 4}}, file: `
version: v1
sharing:
  timeSlicing:
    renameByDefault: true
    failRequestsGreaterThanOne: true
    resources:
    - name: nvidia.com/gpu
      replicas: 4
`},
		// devices as a list of indexes and UUIDs: ignored by NVIDIA (all
		// shared), with a warning naming gpupack's own field.
		{name: "devices list of indexes and UUIDs", mig: "none", res: []res{{"nvidia.com/gpu", "nvidia.com/gpu", 2}},
			warned: []string{"sharing.timeSlicing.resources[0].devices"}, file: `
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      replicas: 2
      devices: [0, "1", "GPU-8e8bcb2d-2b55-4f4b-b0f1-4b9b9f2d7c1a", "MIG-GPU-8e8bcb2d-2b55-4f4b-b0f1-4b9b9f2d7c1a/1/0", "0:1"]
`},
		{name: "devices all", mig: "none", res: []res{{"nvidia.com/gpu", "nvidia.com/gpu", 2}}, file: `
sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: all}]}}
`},
		{name: "devices count", mig: "none", res: []res{{"nvidia.com/gpu", "nvidia.com/gpu", 2}},
			warned: []string{"sharing.timeSlicing.resources[0].devices"}, file: `
sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: 3}]}}
`},
		// H200 MIG profiles under mixed, the +me profile written with '.'
		// as its resource is named; unprefixed names get nvidia.com/.
		{name: "H200 mixed MIG time-slicing", mig: "mixed", res: []res{
			{"nvidia.com/mig-1g.18gb", "nvidia.com/mig-1g.18gb", 7},
			{"nvidia.com/mig-1g.18gb.me", "nvidia.com/mig-1g.18gb.me", 2},
			{"nvidia.com/mig-3g.71gb", "nvidia.com/mig-3g.71gb", 2},
			{"nvidia.com/gpu", "nvidia.com/gpu", 3},
		}, file: `
version: v1
flags:
  migStrategy: mixed
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/mig-1g.18gb
      replicas: 7
    - name: mig-1g.18gb.me
      replicas: 2
    - name: nvidia.com/mig-3g.71gb
      replicas: 2
    - name: gpu
      replicas: 3
`},
		{name: "A100 80GB single", mig: "single", res: []res{{"nvidia.com/gpu", "nvidia.com/gpu.shared", 2}}, file: `
flags: {migStrategy: single}
sharing: {timeSlicing: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 2}]}}
`},
		{name: "MPS", mig: "none", mps: true, fail: true, res: []res{{"nvidia.com/gpu", "nvidia.com/gpu", 10}}, file: `
version: v1
sharing:
  mps:
    resources:
    - name: nvidia.com/gpu
      replicas: 10
`},
		// MPS is the section in force; timeSlicing beside it is ignored with
		// a warning, as NVIDIA's plugin ignores it.
		{name: "MPS and time-slicing", mig: "none", mps: true, fail: true, res: []res{{"nvidia.com/gpu", "nvidia.com/gpu.shared", 3}},
			warned: []string{"sharing.timeSlicing"}, file: `
sharing:
  mps: {renameByDefault: true, resources: [{name: nvidia.com/gpu, replicas: 3}]}
  timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 5}]}
`},
		{name: "JSON", mig: "none", res: []res{{"nvidia.com/gpu", "nvidia.com/gpu", 4}},
			file: `{"version":"v1","flags":{"migStrategy":"none"},"sharing":{"timeSlicing":{"resources":[{"name":"nvidia.com/gpu","replicas":4}]}}}`},
		// Comments, an anchor and its alias, a merge key, flow style, CRLF.
		{name: "anchors and a merge key", mig: "mixed", res: []res{
			{"nvidia.com/mig-1g.10gb", "nvidia.com/mig-1g.10gb", 4},
			{"nvidia.com/mig-2g.20gb", "nvidia.com/mig-2g.20gb", 4},
		}, file: "# fleet default\r\nversion: v1\r\nflags: {migStrategy: mixed}  # A100 80GB\r\nsharing:\r\n  timeSlicing:\r\n    resources:\r\n    - &small {name: nvidia.com/mig-1g.10gb, replicas: 4}\r\n    - <<: *small\r\n      name: nvidia.com/mig-2g.20gb\r\n"},
		{name: "replicas as a YAML float and hex", mig: "none", res: []res{
			{"nvidia.com/gpu", "nvidia.com/gpu", 4}, {"nvidia.com/gpu.big", "nvidia.com/gpu.big", 16},
		}, file: `
sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4.0}, {name: nvidia.com/gpu.big, replicas: 0x10}]}}
`},
		// Unknown keys inside NVIDIA's sections: NVIDIA ignores them; so
		// does gpupack, with a warning.
		{name: "unknown keys in NVIDIA's sections", mig: "none", warned: []string{"flags.newFlag", "sharing.timeSlicing.strategyV2"}, file: `
flags: {newFlag: 1}
sharing: {timeSlicing: {strategyV2: x}}
`},
		// resources.gpus / resources.mig (renaming by product pattern):
		// NVIDIA's plugin ignores them with a log line; gpupack warns.
		{name: "resources patterns", mig: "mixed", res: []res{{"nvidia.com/gpu", "nvidia.com/gpu", 2}},
			warned: []string{"resources.gpus", "resources.mig"}, file: `
version: v1
flags: {migStrategy: mixed}
resources:
  gpus:
  - pattern: "*A100*"
    name: a100
  mig:
  - pattern: "1g.10gb"
    name: mig-small
sharing: {timeSlicing: {resources: [{name: gpu, replicas: 2}]}}
`},
		// UTF-16 with a byte order mark (Windows editors): the YAML
		// decoder reads it, as NVIDIA's plugin does.
		{name: "UTF-16LE with a byte order mark", mig: "none", res: []res{{"nvidia.com/gpu", "nvidia.com/gpu", 4}},
			file: utf16LE("version: v1\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 4}]}}\n")},
		{name: "empty file", mig: "none", file: ``},
		{name: "comments only", mig: "none", file: "# nothing here\n---\n"},
		{name: "null sections", mig: "none", file: "version: v1\nflags:\nsharing:\nresources:\n"},
		{name: "unicode in a comment", mig: "none", res: []res{{"nvidia.com/gpu", "nvidia.com/gpu", 2}}, file: `
# Zeitscheiben für alle GPUs — 2 Replikate
sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, warnings, err := Decode([]byte(tc.file))
			require.NoError(t, err)
			require.Equal(t, tc.mig, *c.Flags.MigStrategy)
			ts, _ := c.Sharing.Replicated()
			require.Equal(t, tc.mps, c.Sharing.MPS != nil)
			require.Equal(t, tc.fail, c.Sharing.FailRequestsGreaterThanOne())
			var got []res
			for i := range ts.Resources {
				r := &ts.Resources[i]
				got = append(got, res{r.Name, ts.Target(r), r.Replicas})
			}
			require.Equal(t, tc.res, got)
			var fields []string
			for _, w := range warnings {
				fields = append(fields, w.Field)
			}
			for _, f := range tc.warned {
				require.Contains(t, fields, f)
			}
			if len(tc.warned) == 0 {
				require.Empty(t, warnings)
			}
		})
	}
}

// TestUserConfigsRefused: bad inputs give an error that names the field
// and says what is wrong; none panics or loads with a silent default.
func TestUserConfigsRefused(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // in the error, in this order of appearance not required
	}{
		{"negative replicas", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: -3}]}}`,
			[]string{"sharing.timeSlicing.resources[0].replicas", "-3", "between 2 and"}},
		{"one replica", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 1}]}}`,
			[]string{"sharing.timeSlicing.resources[0].replicas", "between 2 and"}},
		{"huge replicas", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 99999999999999999999}]}}`,
			[]string{"sharing.timeSlicing.resources[0].replicas", "want int"}},
		{"over the ListAndWatch limit", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 43691}]}}`,
			[]string{"sharing.timeSlicing.resources[0].replicas", "43691", "43690"}},
		{"fractional replicas", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2.5}]}}`,
			[]string{"sharing.timeSlicing.resources[0].replicas", "want int"}},
		{"quoted replicas", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: "4"}]}}`,
			[]string{"sharing.timeSlicing.resources[0].replicas", "want int, got a string"}},
		{"null replicas", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: null}]}}`,
			[]string{"sharing.timeSlicing.resources[0].replicas", "between 2 and"}},
		{"missing replicas", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu}]}}`,
			[]string{"sharing.timeSlicing.resources[0].replicas", "Required"}},
		{"missing name", `sharing: {timeSlicing: {resources: [{replicas: 2}]}}`,
			[]string{"sharing.timeSlicing.resources[0].name", "Required"}},
		{"MPS over 48 clients", `sharing: {mps: {resources: [{name: nvidia.com/gpu, replicas: 49}]}}`,
			[]string{"sharing.mps.resources[0].replicas", "48 clients"}},
		{"duplicate resource names", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2}, {name: gpu, replicas: 4}]}}`,
			[]string{"sharing.timeSlicing.resources[1].name", "Duplicate value"}},
		{"upper-case name", `sharing: {timeSlicing: {resources: [{name: nvidia.com/GPU, replicas: 2}]}}`,
			[]string{"sharing.timeSlicing.resources[0].name", "nvidia.com/GPU", "lowercase"}},
		{"unicode name", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpü, replicas: 2}]}}`,
			[]string{"sharing.timeSlicing.resources[0].name", "nvidia.com/gpü"}},
		// Another vendor's prefix: NVIDIA's rule puts nvidia.com/ before it.
		{"another vendor's prefix", `sharing: {timeSlicing: {resources: [{name: amd.com/gpu, replicas: 2}]}}`,
			[]string{"sharing.timeSlicing.resources[0].name", "nvidia.com/amd.com/gpu", "another prefix than nvidia.com/ (amd.com/)"}},
		// A MIG profile's '+' is '.' in its resource name.
		{"MIG +me in a resource name", "flags: {migStrategy: mixed}\nsharing: {timeSlicing: {resources: [{name: nvidia.com/mig-1g.18gb+me, replicas: 2}]}}",
			[]string{"sharing.timeSlicing.resources[0].name", "'+' as '.'", "nvidia.com/mig-1g.18gb.me"}},
		{"no name after the prefix", `sharing: {timeSlicing: {resources: [{name: nvidia.com/, replicas: 2}]}}`,
			[]string{"sharing.timeSlicing.resources[0].name", "no name after nvidia.com/"}},
		{"resources as a mapping", `sharing: {timeSlicing: {resources: {name: nvidia.com/gpu, replicas: 2}}}`,
			[]string{"sharing.timeSlicing.resources", "want a list, got a mapping"}},
		{"devices ALL", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: ALL}]}}`,
			[]string{"sharing.timeSlicing.resources[0].devices", `"ALL"`}},
		{"devices negative index", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: [-1]}]}}`,
			[]string{"sharing.timeSlicing.resources[0].devices", "-1"}},
		{"devices zero count", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: 0}]}}`,
			[]string{"sharing.timeSlicing.resources[0].devices", "positive"}},
		{"devices bad string", `sharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2, devices: [gpu0]}]}}`,
			[]string{"sharing.timeSlicing.resources[0].devices[0]", "gpu0"}},
		{"migStrategy case", `flags: {migStrategy: Mixed}`, []string{"flags.migStrategy", `"Mixed"`, `"mixed"`}},
		{"migStrategy empty", `flags: {migStrategy: ""}`, []string{"flags.migStrategy", `""`}},
		{"migStrategy number", `flags: {migStrategy: 1}`, []string{"flags.migStrategy", "want string"}},
		{"boolean as a string", `sharing: {timeSlicing: {renameByDefault: "true", resources: [{name: nvidia.com/gpu, replicas: 2}]}}`,
			[]string{"sharing.timeSlicing.renameByDefault", "want bool, got a string"}},
		{"version v2", `version: v2`, []string{"version", `"v2"`, `"v1"`}},
		{"version as a number", `version: 1`, []string{"version", "want string"}},
		{"unknown top-level key", `sharingg: {}`, []string{"sharingg", "unknown field"}},
		{"list at the top", `- version: v1`, []string{"want a mapping at the top level"}},
		{"tab indentation", "version: v1\nflags:\n\tmigStrategy: none\n", []string{"yaml", "line 3"}},
		{"alias bomb", "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
			[]string{"excessive aliasing"}},
		{"two documents", "version: v1\n---\nsharing: {timeSlicing: {resources: [{name: nvidia.com/gpu, replicas: 2}]}}\n",
			[]string{"document"}},
		// The YAML decoder refuses these bytes without a line: the error
		// says where.
		{"Latin-1 comment", "version: v1\n# r\xe9plicas par GPU\nsharing: {}\n",
			[]string{"invalid trailing UTF-8 octet", "line 2, column 4: byte 0xe9 is not UTF-8"}},
		{"NUL byte", "version: v1\nflags: {migStrategy: none}\x00\n",
			[]string{"control characters are not allowed", "line 2, column 27: control character U+0000"}},
		{"UTF-16 without a byte order mark", "v\x00e\x00r\x00:\x00 \x00v\x001\x00\n\x00",
			[]string{"control characters are not allowed", "line 1, column 2: control character U+0000"}},
		{"imex channel 1", `imex: {channelIDs: [1]}`, []string{"imex.channelIDs"}},
		{"resource pattern without a name", `resources: {gpus: [{pattern: "*A100*"}]}`, []string{"resources.gpus[0].name", "Required"}},
		{"resource pattern a number", `resources: {mig: [{pattern: 7, name: x}]}`, []string{"resources.mig[0].pattern", "want string"}},
		{"negative XID", `health: {ignoredXIDs: [-13]}`, []string{"health.ignoredXIDs[0]", "-13"}},
		{"recovery checks 0", `health: {recovery: {checks: 0}}`, []string{"health.recovery.checks", "at least 1"}},
		{"bare-number sleepInterval", `flags: {gfd: {sleepInterval: 60}}`, []string{"flags.gfd.sleepInterval", `"60s"`}},
		{"another resource prefix", `flags: {resourceNamePrefix: example.com}`, []string{"flags.resourceNamePrefix", "example.com"}},
		{"MPS of MIG devices", "flags: {migStrategy: mixed}\nsharing: {mps: {resources: [{name: nvidia.com/mig-1g.10gb, replicas: 3}]}}",
			[]string{"flags.migStrategy", "sharing.mps.resources[0].name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c *Config
			var err error
			require.NotPanics(t, func() { c, _, err = Decode([]byte(tc.file)) })
			require.Error(t, err)
			require.Nil(t, c)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.False(t, strings.Contains(err.Error(), "%!"), "a formatting slip: %v", err)
		})
	}
}

// TestMergeKeysAreNoDuplicates: a key a YAML merge brings in and the
// mapping sets again is YAML's override, not a key given twice: it loads
// with the mapping's own value and no duplicate-key warning (the strict
// YAML decoder reports such keys as "already set in map", and gpupack
// once warned "key given twice" for them). A key written twice beside a
// merge still warns, naming the field.
func TestMergeKeysAreNoDuplicates(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		replicas []int
		warned   []string // fields with a duplicate-key warning
	}{
		{"override after the merge", `
sharing:
  timeSlicing:
    resources:
    - &small {name: nvidia.com/mig-1g.10gb, replicas: 4}
    - <<: *small
      name: nvidia.com/mig-2g.20gb
`, []int{4, 4}, nil},
		// A merge after the mapping's own keys: the YAML decoder NVIDIA's
		// plugin uses (go-yaml v2) lets it override them, so replicas is
		// 4, not 8; gpupack reads the file as NVIDIA's plugin does.
		{"merge after the keys", `
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/mig-1g.10gb
      replicas: &four 4
    - name: nvidia.com/mig-2g.20gb
      replicas: 8
      <<: {replicas: *four}
`, []int{4, 4}, nil},
		// Two merged mappings share replicas: the first one's wins.
		{"two merged mappings", `
sharing:
  timeSlicing:
    resources:
    - &a {name: nvidia.com/gpu, replicas: 2}
    - &b {name: nvidia.com/mig-1g.10gb, replicas: 3}
    - <<: [*a, *b]
      name: nvidia.com/mig-2g.20gb
`, []int{2, 3, 2}, nil},
		{"a real duplicate beside a merge", `
sharing:
  timeSlicing:
    resources:
    - &small {name: nvidia.com/mig-1g.10gb, replicas: 4}
    - <<: *small
      name: nvidia.com/mig-2g.20gb
      replicas: 5
      replicas: 6
`, []int{4, 6}, []string{"sharing.timeSlicing.resources[1].replicas"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, warnings, err := Decode([]byte(tc.file))
			require.NoError(t, err)
			var replicas []int
			for _, r := range c.Sharing.TimeSlicing.Resources {
				replicas = append(replicas, r.Replicas)
			}
			require.Equal(t, tc.replicas, replicas)
			var dup []string
			for _, w := range warnings {
				if w.Kind == WarningDuplicateKey {
					dup = append(dup, w.Field)
					require.Contains(t, w.Message, "given 2 times in one mapping")
				}
			}
			require.Equal(t, tc.warned, dup)
		})
	}
}

// utf16LE is s in UTF-16, little endian, after a byte order mark.
func utf16LE(s string) string {
	b := []byte{0xff, 0xfe}
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return string(b)
}
