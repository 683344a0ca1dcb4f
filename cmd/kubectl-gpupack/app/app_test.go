package app

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/gpupack/gpupack/pkg/deviceid"
	"github.com/gpupack/gpupack/pkg/gpuview"
	"github.com/gpupack/gpupack/pkg/protocol"
	"github.com/gpupack/gpupack/pkg/scheduler/apis/config"
	"github.com/gpupack/gpupack/pkg/scheduler/gpupack"
	"github.com/gpupack/gpupack/pkg/testing/fixture"
	"github.com/gpupack/gpupack/pkg/topology"
	"github.com/gpupack/gpupack/pkg/version"
)

// nvmlUUID is an NVML-like UUID for GPU or MIG device n of a node.
func nvmlUUID(prefix string, node, n int) string {
	return fmt.Sprintf("%s-%02x%06x-a496-541d-97b0-9442896f29d7", prefix, node, n)
}

// demo is a small cluster as `kubectl gpupack` finds it:
//
//   - dgx (label pool=train): a DGX-1, 8 x V100; default/train holds GPUs
//     0-3, as chosen; default/infer was given GPU 5 where GPU 4 was chosen.
//   - mig (pool=infer): 2 x A100, GPU 0 in MIG mode with two 3g.40gb
//     devices (slices 0-3 and 4-7), GPU 1 time-shared in 4 replicas;
//     default/small holds the second MIG device and default/share replica 2
//     of GPU 1, both as chosen.
//   - cpu (pool=cpu): no GPU annotations.
//
// Pending: default/wait asks 2 GPUs of the default scheduler, default/big
// 16 of gpupack-scheduler.
type demo struct {
	dgx, mig *topology.Node
	objects  []runtime.Object
}

func newDemo(t *testing.T) *demo {
	t.Helper()
	d := &demo{dgx: fixture.DGX1V100("d"), mig: fixture.NVSwitch("m", "A100", 2, 12)}
	for i := range d.dgx.GPUs {
		d.dgx.GPUs[i].UUID = nvmlUUID("GPU", 1, i)
	}
	for i := range d.mig.GPUs {
		d.mig.GPUs[i].UUID = nvmlUUID("GPU", 2, i)
	}
	fixture.WithMIG(d.mig, 0, 4, "3g.40gb", "3g.40gb")
	for j := range d.mig.MIG {
		d.mig.MIG[j].UUID = nvmlUUID("MIG", 2, j)
	}
	d.mig.GPUs[1].Replicas = 4
	gu := func(i int) string { return d.dgx.GPUs[i].UUID }
	replica := deviceid.ReplicaID(d.mig.GPUs[1].UUID, 2)
	ref := func(name string) protocol.PodRef {
		return protocol.PodRef{Namespace: "default", Name: name, UID: "uid-" + name}
	}
	node := func(name, pool string, topo *topology.Node, inUse []protocol.PodDevices) *corev1.Node {
		n := fixture.MakeNode().Name(name).Annotations()
		n.Labels = map[string]string{"pool": pool}
		if topo != nil {
			raw, err := protocol.EncodeTopology(topo)
			require.NoError(t, err)
			n.Annotations(protocol.TopologyAnnotation, raw)
		}
		if inUse != nil {
			raw, err := protocol.EncodeInUse(inUse)
			require.NoError(t, err)
			n.Annotations(protocol.InUseAnnotation, raw)
		}
		return n.Obj()
	}
	pod := func(name, node, scheduler string, asks int64, chosen map[string][]string) *corev1.Pod {
		p := fixture.MakePod().Named(name).Node(node).SchedulerName(scheduler).Container("main").Limit("nvidia.com/gpu", asks).Annotations()
		if chosen != nil {
			raw, err := protocol.EncodeDevices(protocol.Devices{Resources: chosen})
			require.NoError(t, err)
			p.Annotations(protocol.DevicesAnnotation, raw)
		}
		return p.Obj()
	}
	d.objects = []runtime.Object{
		node("dgx", "train", d.dgx, []protocol.PodDevices{
			{PodRef: ref("train"), Devices: []string{gu(0), gu(1), gu(2), gu(3)}},
			{PodRef: ref("infer"), Devices: []string{gu(5)}},
		}),
		node("mig", "infer", d.mig, []protocol.PodDevices{
			{PodRef: ref("small"), Devices: []string{d.mig.MIG[1].UUID}},
			{PodRef: ref("share"), Devices: []string{replica}},
		}),
		node("cpu", "cpu", nil, nil),
		pod("train", "dgx", "gpupack-scheduler", 4, map[string][]string{"nvidia.com/gpu": {gu(0), gu(1), gu(2), gu(3)}}),
		pod("infer", "dgx", "gpupack-scheduler", 1, map[string][]string{"nvidia.com/gpu": {gu(4)}}),
		pod("small", "mig", "gpupack-scheduler", 0, map[string][]string{"nvidia.com/mig-3g.40gb": {d.mig.MIG[1].UUID}}),
		pod("share", "mig", "gpupack-scheduler", 0, map[string][]string{"nvidia.com/gpu.shared": {replica}}),
		pod("wait", "", "default-scheduler", 2, nil),
		pod("big", "", "gpupack-scheduler", 16, nil),
	}
	return d
}

// run runs kubectl gpupack with args on a fake clientset holding the demo's
// objects; it returns stdout, stderr, the error and the client's actions.
func (d *demo) run(t *testing.T, args ...string) (string, string, error, []clienttesting.Action) {
	t.Helper()
	client := fake.NewClientset(d.objects...)
	var out, errOut bytes.Buffer
	cmd := newCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut},
		func() (kubernetes.Interface, error) { return client, nil })
	cmd.SetArgs(append(args, "--namespace=default"))
	err := cmd.Execute()
	return out.String(), errOut.String(), err, client.Actions()
}

// noCluster runs kubectl gpupack with args, failing the test if it
// connects: for errors in the flags, found first.
func noCluster(t *testing.T, args ...string) error {
	t.Helper()
	var out bytes.Buffer
	cmd := newCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &out}, func() (kubernetes.Interface, error) {
		t.Fatalf("connected to the cluster with %v", args)
		return nil, nil
	})
	cmd.SetArgs(args)
	return cmd.Execute()
}

// The version line is the binary's name and pkg/version's one-line form,
// as the other binaries print it; -v is not --version.
func TestVersion(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &out})
	cmd.SetArgs([]string{"--version"})
	require.NoError(t, cmd.Execute())
	require.Equal(t, "kubectl-"+version.Get().String()+"\n", out.String())
	require.True(t, strings.HasPrefix(out.String(), "kubectl-gpupack "+version.Get().Version+" (commit "), out.String())
	f := cmd.Flags().Lookup("version")
	require.NotNil(t, f)
	require.Empty(t, f.Shorthand, "--version is long only: -v is the log verbosity")
}

// -v and --v set klog's verbosity (client-go logs every request at 6), on
// every command, as kubectl's; they failed with "unknown shorthand flag".
func TestVerbosityFlag(t *testing.T) {
	// klog's state is global: its output comes here during the test.
	var logs bytes.Buffer
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	klog.InitFlags(fs)
	require.NoError(t, fs.Set("logtostderr", "false"))
	klog.SetOutput(&logs)
	t.Cleanup(func() {
		require.NoError(t, fs.Set("v", "0"))
		require.NoError(t, fs.Set("logtostderr", "true"))
		klog.SetOutput(io.Discard)
	})
	for _, tc := range []struct {
		args  []string
		level klog.Level
		// wantLog is in the log: at 6, client-go's requests.
		wantLog string
	}{
		{[]string{"nodes", "-v=6"}, 6, `"Response" verb="GET" url="https://127.0.0.1:1/api/v1/nodes"`},
		{[]string{"-v", "4", "frag"}, 4, ""},
		{[]string{"pods", "--v=8"}, 8, `"Request" verb="GET" url="https://127.0.0.1:1/api/v1/nodes"`},
		{[]string{"explain", "p", "-v=2"}, 2, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			logs.Reset()
			var out bytes.Buffer
			cmd := NewCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &out})
			// No server at this address: the command gets as far as
			// connecting.
			cmd.SetArgs(append(tc.args, "--server=https://127.0.0.1:1"))
			err := cmd.Execute()
			require.Error(t, err)
			require.NotContains(t, err.Error(), "unknown shorthand")
			require.NotContains(t, err.Error(), "unknown flag")
			// klog's global -v, as the command set it.
			require.Equal(t, fmt.Sprint(int(tc.level)), fs.Lookup("v").Value.String())
			if tc.wantLog != "" {
				require.Contains(t, logs.String(), tc.wantLog)
			} else {
				require.NotContains(t, logs.String(), "round_trippers")
			}
		})
	}
}

func TestUnknownOutputFailsBeforeConnecting(t *testing.T) {
	for _, cmd := range [][]string{{"nodes"}, {"pods"}, {"frag"}, {"explain", "p"}} {
		require.ErrorContains(t, noCluster(t, append(cmd, "-o", "xml")...), `unknown output format "xml"`)
	}
}

// nodes and frag take node names (each read by name) or a label selector
// (sent to the API server); `nodes gpupack-t4` was "unknown command".
func TestNodesByNameAndSelector(t *testing.T) {
	d := newDemo(t)
	for _, cmd := range []string{"nodes", "frag"} {
		for _, tc := range []struct {
			name      string
			args      []string
			wantNodes []string // GPU nodes shown
			wantErr   string
			wantWarn  string
			// wantGet are the nodes read by name; wantSelector the label
			// selector of the node list (when listed); wantPodSelector
			// the field selector of the pod list.
			wantGet         []string
			wantSelector    string
			wantPodSelector string
		}{
			{name: "all", wantNodes: []string{"dgx", "mig"}},
			{name: "one by name", args: []string{"mig"}, wantNodes: []string{"mig"}, wantGet: []string{"mig"}, wantPodSelector: "spec.nodeName=mig"},
			{name: "two by name, once each", args: []string{"mig", "dgx", "mig"}, wantNodes: []string{"dgx", "mig"}, wantGet: []string{"mig", "dgx"}},
			{name: "not a GPU node", args: []string{"dgx", "cpu"}, wantNodes: []string{"dgx"}, wantGet: []string{"dgx", "cpu"},
				wantWarn: `warning: node "cpu" is not a GPU node: it has no gpupack.io/topology or gpupack.io/in-use annotation`},
			{name: "missing node", args: []string{"gpupack-t4"}, wantErr: `reading node gpupack-t4: nodes "gpupack-t4" not found`},
			{name: "selector", args: []string{"-l", "pool=infer"}, wantNodes: []string{"mig"}, wantSelector: "pool=infer"},
			{name: "set selector", args: []string{"--selector", "pool in (train,cpu)"}, wantNodes: []string{"dgx"}, wantSelector: "pool in (cpu,train)"},
			{name: "selector matching none", args: []string{"-l", "pool=none"}, wantSelector: "pool=none"},
			{name: "name and selector", args: []string{"dgx", "-l", "pool=train"}, wantErr: "name cannot be provided when a selector is specified"},
			{name: "bad selector", args: []string{"-l", "pool in train"}, wantErr: `-l "pool in train"`},
		} {
			t.Run(cmd+"/"+tc.name, func(t *testing.T) {
				out, errOut, err, actions := d.run(t, append([]string{cmd, "-o", "json"}, tc.args...)...)
				if tc.wantErr != "" {
					require.ErrorContains(t, err, tc.wantErr)
					return
				}
				require.NoError(t, err)
				if tc.wantWarn != "" {
					require.Equal(t, tc.wantWarn+"\n", errOut)
				} else {
					require.Empty(t, errOut)
				}
				var list struct {
					Items []struct {
						Name string `json:"name"`
						Node string `json:"node"`
					} `json:"items"`
				}
				require.NoError(t, json.Unmarshal([]byte(out), &list))
				got := []string{}
				for _, it := range list.Items {
					got = append(got, it.Name+it.Node)
				}
				require.Equal(t, append([]string{}, tc.wantNodes...), got)
				var gets []string
				listed, podSel := false, ""
				for _, a := range actions {
					switch a := a.(type) {
					case clienttesting.GetAction:
						require.Equal(t, "nodes", a.GetResource().Resource)
						gets = append(gets, a.GetName())
					case clienttesting.ListAction:
						r := a.GetListRestrictions()
						if a.GetResource().Resource == "nodes" {
							listed = true
							require.Equal(t, tc.wantSelector, r.Labels.String())
						} else {
							podSel = r.Fields.String()
						}
					}
				}
				require.Equal(t, tc.wantGet, gets)
				require.Equal(t, len(tc.wantGet) == 0, listed, "nodes are listed unless named")
				require.Equal(t, tc.wantPodSelector, podSel)
			})
		}
	}
}

// The tables name the workload their fragmentation assumes.
func TestTablesNameTheWorkload(t *testing.T) {
	d := newDemo(t)
	const defaultTypes = "  whole:1 50%, whole:2 4%, whole:4 3%, whole:8 3%, shared:800m 15%, shared:500m 13%, shared:250m 7%, shared:100m 5%\n"
	for _, tc := range []struct {
		name string
		args []string
		want string // the output's end
	}{
		{"nodes", []string{"nodes"}, "fragmentation workload: GPUPack's default prior (args workload.prior)\n" + defaultTypes},
		{"nodes --workload", []string{"nodes", "--workload", "[{kind: whole, count: 8, weight: 1}]"}, "fragmentation workload: --workload\n  whole:8 100%\n"},
		{"frag", []string{"frag"}, "shared:100m  5%     3.00      0.15\nfragmentation workload: GPUPack's default prior (args workload.prior)\n"},
		{"frag --workload", []string{"frag", "--workload", `[{"kind":"whole","count":2,"weight":3},{"kind":"shared","milli":500,"weight":1}]`},
			"TASK TYPE    SHARE  STRANDED  FRAGMENTATION\nwhole:2      75%    0.75      0.56\nshared:500m  25%    3.00      0.75\nfragmentation workload: --workload\n"},
		{"explain", []string{"explain", "big"}, "fragmentation workload: GPUPack's default prior (args workload.prior)\n" + defaultTypes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err, _ := d.run(t, tc.args...)
			require.NoError(t, err)
			require.True(t, strings.HasSuffix(out, tc.want), out)
		})
	}
}

// --workload takes the args' workload.prior and refuses what the plugin's
// args refuse, with the field, before connecting.
func TestWorkloadFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name, spec, wantErr string
	}{
		{"not a list", "{kind: whole}", "--workload: want the list of workload.prior"},
		{"unknown field", "[{kind: whole, count: 1, weight: 1, size: 3}]", `unknown field "size"`},
		{"empty", "[]", "--workload: no task type"},
		{"count 0", "[{kind: whole, weight: 1}]", "workload.prior[0].count: Invalid value: 0: must be in 1..64"},
		{"kind", "[{kind: half, count: 1, weight: 1}]", `workload.prior[0].kind: Unsupported value: "half"`},
		{"milli of a whole type", "[{kind: whole, count: 1, milli: 500, weight: 1}]", "workload.prior[0].milli: Forbidden"},
		{"weights 0", "[{kind: whole, count: 1, weight: 0}]", "workload.prior: Invalid value: 0: weights must add up to more than 0"},
	} {
		for _, cmd := range [][]string{{"nodes"}, {"frag"}, {"explain", "p"}} {
			t.Run(tc.name+"/"+cmd[0], func(t *testing.T) {
				require.ErrorContains(t, noCluster(t, append(cmd, "--workload", tc.spec)...), tc.wantErr)
			})
		}
	}
}

// schedulerConfig is a KubeSchedulerConfiguration with the default
// profile (no GPUPack), gpupack-scheduler (whole:4 only) and gpupack-b
// (GPUPack without args: the defaults).
const schedulerConfig = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
  - schedulerName: default-scheduler
  - schedulerName: gpupack-scheduler
    plugins:
      multiPoint:
        enabled:
          - name: GPUPack
    pluginConfig:
      - name: GPUPack
        args:
          workload:
            prior:
              - {kind: whole, count: 4, weight: 1}
  - schedulerName: gpupack-b
    plugins:
      multiPoint:
        enabled:
          - name: GPUPack
`

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(data), 0o600))
	return p
}

// --scheduler-config reads the scheduler's own configuration as it does:
// its GPUPack profiles and their args (explain: the pod's profile).
func TestSchedulerConfig(t *testing.T) {
	d := newDemo(t)
	cfg := writeFile(t, "config.yaml", schedulerConfig)
	noGPUPack := writeFile(t, "plain.yaml", "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n")
	badArgs := writeFile(t, "bad.yaml", strings.Replace(schedulerConfig, "count: 4", "count: 0", 1))
	typo := writeFile(t, "typo.yaml", strings.Replace(schedulerConfig, "prior:", "priors:", 1))
	// gpupack-b first: explain still takes the pod's own profile.
	i := strings.Index(schedulerConfig, "  - schedulerName: gpupack-scheduler")
	j := strings.Index(schedulerConfig, "  - schedulerName: gpupack-b")
	bFirst := writeFile(t, "b-first.yaml", schedulerConfig[:i]+schedulerConfig[j:]+schedulerConfig[i:j])
	const manifest = "../../../manifests/scheduler/config.yaml"
	defaultTypes := []string{"whole:1", "whole:2", "whole:4", "whole:8", "shared:800m", "shared:500m", "shared:250m", "shared:100m"}
	for _, tc := range []struct {
		name       string
		args       []string
		wantSource string
		wantTypes  []string
		wantErr    string
	}{
		{name: "first GPUPack profile", args: []string{"frag", "--scheduler-config", cfg},
			wantSource: "workload.prior of profile gpupack-scheduler in " + cfg, wantTypes: []string{"whole:4"}},
		{name: "--profile", args: []string{"nodes", "--scheduler-config", cfg, "--profile", "gpupack-b"},
			wantSource: "workload.prior of profile gpupack-b in " + cfg, wantTypes: defaultTypes},
		{name: "the manifests' config", args: []string{"frag", "--scheduler-config", manifest},
			wantSource: "workload.prior of profile gpupack-scheduler in " + manifest, wantTypes: defaultTypes},
		{name: "first GPUPack profile, b first", args: []string{"frag", "--scheduler-config", bFirst},
			wantSource: "workload.prior of profile gpupack-b in " + bFirst, wantTypes: defaultTypes},
		{name: "explain: the pod's profile, not the first", args: []string{"explain", "big", "--scheduler-config", bFirst},
			wantSource: "workload.prior of profile gpupack-scheduler in " + bFirst, wantTypes: []string{"whole:4"}},
		{name: "explain: --profile wins", args: []string{"explain", "big", "--scheduler-config", cfg, "--profile", "gpupack-b"},
			wantSource: "workload.prior of profile gpupack-b in " + cfg, wantTypes: defaultTypes},
		{name: "--workload wins", args: []string{"frag", "--scheduler-config", cfg, "--workload", "[{kind: whole, count: 2, weight: 1}]"},
			wantSource: "--workload", wantTypes: []string{"whole:2"}},
		{name: "explain: the pod's profile", args: []string{"explain", "big", "--scheduler-config", cfg},
			wantSource: "workload.prior of profile gpupack-scheduler in " + cfg, wantTypes: []string{"whole:4"}},
		{name: "profile without GPUPack", args: []string{"frag", "--scheduler-config", cfg, "--profile", "default-scheduler"},
			wantErr: `no profile "default-scheduler" enables GPUPack (the profiles that do: gpupack-scheduler, gpupack-b)`},
		{name: "--profile alone", args: []string{"frag", "--profile", "gpupack-b"}, wantErr: "--profile names a profile of --scheduler-config"},
		{name: "no GPUPack profile", args: []string{"frag", "--scheduler-config", noGPUPack}, wantErr: "no profile enables GPUPack"},
		{name: "invalid args", args: []string{"nodes", "--scheduler-config", badArgs}, wantErr: "profiles[1].pluginConfig[GPUPack].args.workload.prior[0].count: Invalid value: 0"},
		{name: "strict decoding", args: []string{"nodes", "--scheduler-config", typo}, wantErr: `unknown field "workload.priors"`},
		{name: "missing file", args: []string{"nodes", "--scheduler-config", cfg + ".gone"}, wantErr: "reading the scheduler's configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err, _ := d.run(t, append(tc.args, "-o", "json")...)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			var v struct {
				Workload gpuview.WorkloadView `json:"workload"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &v))
			require.Equal(t, tc.wantSource, v.Workload.Source)
			var types []string
			for _, wt := range v.Workload.Types {
				types = append(types, wt.Type)
			}
			require.Equal(t, tc.wantTypes, types)
		})
	}
}

// Every -o json|yaml output is one object with apiVersion, a kind ending
// in List and items; nodes and pods printed bare lists, frag and explain
// objects of their own.
func TestOutputObjects(t *testing.T) {
	d := newDemo(t)
	for _, tc := range []struct {
		args      []string
		kind      string
		items     int
		wantExtra []string // keys besides apiVersion, kind and items
	}{
		{[]string{"nodes"}, "GPUNodeList", 2, []string{"workload"}},
		{[]string{"pods"}, "GPUPodList", 6, nil},
		{[]string{"frag"}, "NodeFragmentationList", 2, []string{"total", "types", "workload"}},
		{[]string{"explain", "big"}, "NodeFitList", 3, []string{"gpupackProfile", "pod", "schedulerName", "workload"}},
		{[]string{"nodes", "-l", "pool=none"}, "GPUNodeList", 0, []string{"workload"}},
	} {
		for _, format := range []string{"json", "yaml"} {
			t.Run(strings.Join(tc.args, " ")+"/"+format, func(t *testing.T) {
				out, _, err, _ := d.run(t, append(tc.args, "-o", format)...)
				require.NoError(t, err)
				var obj map[string]any
				if format == "json" {
					require.NoError(t, json.Unmarshal([]byte(out), &obj))
				} else {
					require.NoError(t, yaml.Unmarshal([]byte(out), &obj))
				}
				require.Equal(t, "gpupack.io/v1alpha1", obj["apiVersion"])
				require.Equal(t, tc.kind, obj["kind"])
				items, ok := obj["items"].([]any)
				require.True(t, ok, "items is a list, also when empty: %v", obj["items"])
				require.Len(t, items, tc.items)
				var keys []string
				for k := range obj {
					if k != "apiVersion" && k != "kind" && k != "items" {
						keys = append(keys, k)
					}
				}
				require.ElementsMatch(t, tc.wantExtra, keys)
			})
		}
	}
}

// MIG devices' slices are data in -o json|yaml ({start, size}), not the
// table's "[4-7]".
func TestMIGSlicesStructured(t *testing.T) {
	d := newDemo(t)
	out, _, err, _ := d.run(t, "nodes", "mig", "-o", "yaml")
	require.NoError(t, err)
	var list struct {
		Items []gpuview.NodeView `json:"items"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(out), &list))
	require.Len(t, list.Items, 1)
	mig := list.Items[0].GPUs[0].MIG
	require.Len(t, mig, 2)
	require.Equal(t, gpuview.MIGSlices{Start: 0, Size: 4}, mig[0].Placement)
	require.Equal(t, gpuview.MIGSlices{Start: 4, Size: 4}, mig[1].Placement)
	require.Equal(t, []string{"default/small"}, mig[1].HeldBy)
	require.Contains(t, out, "      slices:\n        size: 4\n        start: 4\n")
}

// The pods table names devices by GPU index, says "= chosen" for an exact
// handoff, and -o wide prints the IDs in full: it was 341 characters wide
// with the same eight UUIDs in CHOSEN and GIVEN.
func TestPodsTable(t *testing.T) {
	d := newDemo(t)
	out, _, err, _ := d.run(t, "pods")
	require.NoError(t, err)
	require.Equal(t, `POD            NODE  CHOSEN                         GIVEN     HANDOFF  SET QUALITY
default/big    -     -                              -         pending  -
default/infer  dgx   nvidia.com/gpu=4               5         differs  -
default/share  mig   nvidia.com/gpu.shared=1::2     = chosen  exact    -
default/small  mig   nvidia.com/mig-3g.40gb=0[4-7]  = chosen  exact    -
default/train  dgx   nvidia.com/gpu=0-3             = chosen  exact    1.00 (ring 25 of 25 GB/s, NVLink ring)
default/wait   -     -                              -         pending  -
`, out)

	out, _, err, _ = d.run(t, "pods", "-o", "wide")
	require.NoError(t, err)
	lines := strings.Split(out, "\n")
	require.Regexp(t, `^POD\s+NODE\s+CHOSEN\s+GIVEN\s+HANDOFF\s+GPUS\s+SET QUALITY$`, lines[0])
	all := strings.Join([]string{d.dgx.GPUs[0].UUID, d.dgx.GPUs[1].UUID, d.dgx.GPUs[2].UUID, d.dgx.GPUs[3].UUID}, ",")
	require.Regexp(t, `^default/train\s+dgx\s+nvidia.com/gpu=`+all+`\s+`+all+`\s+exact\s+\{0,1,2,3\}\s+1.00 `, lines[5])
	require.Regexp(t, `^default/infer\s+dgx\s+nvidia.com/gpu=`+d.dgx.GPUs[4].UUID+`\s+`+d.dgx.GPUs[5].UUID+`\s+differs\s+\{5\}\s+-$`, lines[2])
}

// A pod whose schedulerName is not a GPUPack profile is not scheduled by
// GPUPack: explain says so (and still shows what GPUPack would do).
func TestExplainSchedulerName(t *testing.T) {
	d := newDemo(t)
	cfg := writeFile(t, "config.yaml", schedulerConfig)
	for _, tc := range []struct {
		name     string
		args     []string
		wantNote string // "" none
	}{
		{name: "GPUPack's pod", args: []string{"explain", "big"}},
		{name: "default scheduler's pod", args: []string{"explain", "wait"},
			wantNote: "spec.schedulerName is default-scheduler, not a GPUPack profile (gpupack-scheduler: the default GPUPack profile; --scheduler-config reads the scheduler's own): GPUPack does not schedule this pod; shown is what GPUPack would do"},
		{name: "profiles of the config", args: []string{"explain", "wait", "--scheduler-config", cfg},
			wantNote: "spec.schedulerName is default-scheduler, not a GPUPack profile (gpupack-scheduler, gpupack-b: the GPUPack profiles of --scheduler-config): GPUPack does not schedule this pod; shown is what GPUPack would do"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err, _ := d.run(t, tc.args...)
			require.NoError(t, err)
			if tc.wantNote == "" {
				require.NotContains(t, out, "note:")
			} else {
				require.Contains(t, out, "\nnote: "+tc.wantNote+"\nNODE ")
			}
			out, _, err, _ = d.run(t, append(tc.args, "-o", "json")...)
			require.NoError(t, err)
			var v fitList
			require.NoError(t, json.Unmarshal([]byte(out), &v))
			require.Equal(t, tc.wantNote == "", v.GPUPackProfile)
			require.Equal(t, tc.wantNote, v.Note)
			require.Len(t, v.Items, 3)
		})
	}
}

func TestPrintObject(t *testing.T) {
	v := fitList{typeMeta: newTypeMeta(kindFitList), Pod: "default/p", SchedulerName: "gpupack-scheduler", GPUPackProfile: true,
		Items: []gpupack.NodeFit{{Node: "a", Fits: true, FragDelta: 0.5, QualityRatio: 1}}}
	var buf bytes.Buffer
	require.NoError(t, printObject(&buf, outputYAML, v))
	// YAML keys are sorted, as kubectl's (sigs.k8s.io/yaml).
	require.Equal(t, `apiVersion: gpupack.io/v1alpha1
gpupackProfile: true
items:
- fits: true
  fragDelta: 0.5
  node: a
  qualityRatio: 1
  supplyCost: 0
kind: NodeFitList
pod: default/p
schedulerName: gpupack-scheduler
workload:
  source: ""
  types: null
`, buf.String())
	buf.Reset()
	require.NoError(t, printObject(&buf, outputJSON, v))
	require.JSONEq(t, `{"apiVersion":"gpupack.io/v1alpha1","kind":"NodeFitList","pod":"default/p","schedulerName":"gpupack-scheduler","gpupackProfile":true,
		"workload":{"source":"","types":null},"items":[{"node":"a","fits":true,"fragDelta":0.5,"qualityRatio":1,"supplyCost":0}]}`, buf.String())
	require.Error(t, printObject(&buf, "xml", v))
}

func TestWriteExplain(t *testing.T) {
	v := fitList{Pod: "default/big", Note: "spec.schedulerName is x, not a GPUPack profile", Workload: gpuview.NewWorkloadView(nil, "GPUPack's default prior"), Items: []gpupack.NodeFit{
		{Node: "cpu", Reason: "gpupack: node has no gpupack.io/topology annotation", Unresolvable: true},
		{Node: "dgx", Fits: true, FragDelta: -0.25, QualityRatio: 0.5, SupplyCost: 1.5, Score: ptr.To[int64](100)},
		{Node: "pcie", Reason: "gpupack: no 9 free healthy whole GPUs for 9 x nvidia.com/gpu (3 free)"},
	}}
	var buf bytes.Buffer
	require.NoError(t, writeExplain(&buf, v))
	require.Equal(t, `pod default/big: fits 1 of 3 nodes (GPUPack's Filter only; other plugins not asked)
note: spec.schedulerName is x, not a GPUPack profile
NODE  FITS   SCORE  FRAG DELTA (<0 BETTER)  SUPPLY COST  SET QUALITY  REASON
cpu   never  -      -                       -            -            gpupack: node has no gpupack.io/topology annotation
dgx   yes    100    -0.25                   1.50         0.50         -
pcie  no     -      -                       -            -            gpupack: no 9 free healthy whole GPUs for 9 x nvidia.com/gpu (3 free)
fragmentation workload: GPUPack's default prior
  whole:1 50%, whole:2 4%, whole:4 3%, whole:8 3%, shared:800m 15%, shared:500m 13%, shared:250m 7%, shared:100m 5%
`, buf.String())
}

// explain's help says what FRAG DELTA's sign means.
func TestExplainHelpSaysTheSign(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &out})
	cmd.SetArgs([]string{"explain", "--help"})
	require.NoError(t, cmd.Execute())
	require.Contains(t, out.String(), "Negative: the node's\n               fragmentation drops")
	require.Contains(t, out.String(), "better")
}

// A profile is GPUPack's when it runs GPUPack's Filter: enabled at
// multiPoint (and not disabled at filter) or at filter.
func TestEnablesGPUPack(t *testing.T) {
	gp := []schedconfig.Plugin{{Name: "GPUPack"}}
	for _, tc := range []struct {
		name    string
		plugins *schedconfig.Plugins
		want    bool
	}{
		{"none", nil, false},
		{"other plugins only", &schedconfig.Plugins{MultiPoint: schedconfig.PluginSet{Enabled: []schedconfig.Plugin{{Name: "NodeResourcesFit"}}}}, false},
		{"multiPoint", &schedconfig.Plugins{MultiPoint: schedconfig.PluginSet{Enabled: gp}}, true},
		{"filter", &schedconfig.Plugins{Filter: schedconfig.PluginSet{Enabled: gp}}, true},
		{"multiPoint, disabled at filter", &schedconfig.Plugins{MultiPoint: schedconfig.PluginSet{Enabled: gp}, Filter: schedconfig.PluginSet{Disabled: gp}}, false},
		{"multiPoint, every filter disabled", &schedconfig.Plugins{MultiPoint: schedconfig.PluginSet{Enabled: gp}, Filter: schedconfig.PluginSet{Disabled: []schedconfig.Plugin{{Name: "*"}}}}, false},
		{"score only", &schedconfig.Plugins{Score: schedconfig.PluginSet{Enabled: gp}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, enablesGPUPack(tc.plugins))
		})
	}
}

// --workload reads YAML and JSON alike, into the plugin's prior.
func TestParsePrior(t *testing.T) {
	want := []config.TaskTypeWeight{
		{Kind: config.TaskWhole, Count: 8, Weight: 1},
		{Kind: config.TaskShared, Milli: 500, Weight: 3},
		{Kind: config.TaskMIG, Count: 2, MIGProfile: "1g.10gb", Model: "NVIDIA A100-SXM4-80GB", Weight: 2},
	}
	for _, spec := range []string{
		`[{kind: whole, count: 8, weight: 1}, {kind: shared, milli: 500, weight: 3}, {kind: mig, count: 2, migProfile: 1g.10gb, model: NVIDIA A100-SXM4-80GB, weight: 2}]`,
		`[{"kind":"whole","count":8,"weight":1},{"kind":"shared","milli":500,"weight":3},{"kind":"mig","count":2,"migProfile":"1g.10gb","model":"NVIDIA A100-SXM4-80GB","weight":2}]`,
		"- {kind: whole, count: 8, weight: 1}\n- kind: shared\n  milli: 500\n  weight: 3\n- {kind: mig, count: 2, migProfile: 1g.10gb, model: NVIDIA A100-SXM4-80GB, weight: 2}\n",
	} {
		got, err := parsePrior(spec)
		require.NoError(t, err, spec)
		require.Equal(t, want, got, spec)
	}
}
