package main

import (
	"testing"
)

// GPUPack's score weight as a hand-written KubeSchedulerConfiguration
// gives it. kube-scheduler accepts any int32 weight and turns 0 into 1; a
// negative one is multiplied into GPUPack's 0..100 score as it is, so the
// node with the most fragmentation and the worst GPU set would rank first
// (multiPoint), or, listed under score before other scorers, it fails
// kube-scheduler's overflow check with "total score of Score plugins could
// overflow", naming neither the plugin nor the weight. The chart refuses
// such a weight (values.schema.json scheduler.weight minimum 1). Old: the
// multiPoint case started and inverted GPUPack's ranking silently.
func TestCheckPluginConfigNegativeWeight(t *testing.T) {
	const head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: p\n  plugins:\n"
	const bind = "    bind:\n      enabled: [{name: GPUPack}, {name: DefaultBinder}]\n      disabled: [{name: \"*\"}]\n"
	multiPoint := func(w string) string {
		return head + "    multiPoint:\n      enabled: [{name: GPUPack, weight: " + w + "}]\n" + bind
	}
	tests := []struct {
		name, yaml, wantErr string
	}{
		// -1 x 100 points: the best node scores -100, the worst 0.
		{"multiPoint -1", multiPoint("-1"), `profiles[0].plugins.multiPoint.enabled[GPUPack].weight: Invalid value: -1: GPUPack's score weight must not be negative`},
		{"multiPoint int32 min", multiPoint("-2147483648"), `profiles[0].plugins.multiPoint.enabled[GPUPack].weight: Invalid value: -2147483648`},
		{"score -10 over multiPoint 10", multiPoint("10") + "    score:\n      enabled: [{name: GPUPack, weight: -10}]\n",
			`profiles[0].plugins.score.enabled[GPUPack].weight: Invalid value: -10`},
		// The second profile is the one refused, by its index.
		{"second profile", multiPoint("10") + "- schedulerName: q\n  plugins:\n    multiPoint:\n      enabled: [{name: GPUPack, weight: -3}]\n" + bind,
			`profiles[1].plugins.multiPoint.enabled[GPUPack].weight: Invalid value: -3`},
		// 0 is kube-scheduler's 1.
		{"multiPoint 0", multiPoint("0"), ""},
		{"multiPoint 1", multiPoint("1"), ""},
		// 2147483647 x 100 = 214748364700, far inside int64.
		{"multiPoint int32 max", multiPoint("2147483647"), ""},
		// Another plugin's weight is kube-scheduler's business.
		{"another plugin negative", multiPoint("10") + "    score:\n      enabled: [{name: ImageLocality, weight: -1}]\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { requireConfigCheck(t, tt.yaml, tt.wantErr) })
	}
}
