package v1

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// The ConfigMap shipped in manifests/ must load, and shows the defaults.
func TestShippedConfigMapIsTheDefault(t *testing.T) {
	raw, err := os.ReadFile("../../../manifests/device-plugin/configmap.yaml")
	require.NoError(t, err)
	var cm struct {
		Data map[string]string `json:"data"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &cm))
	c, err := Parse([]byte(cm.Data["config.yaml"]))
	require.NoError(t, err)
	c.Sharing.TimeSlicing.Resources = nil // [] in the file, nil by default
	require.Equal(t, Default(), c)
}
