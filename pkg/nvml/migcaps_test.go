package nvml_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gpupack/gpupack/pkg/nvml"
)

func TestParseMIGMinors(t *testing.T) {
	// As an A100 driver writes it (first lines).
	const real = "config 1\nmonitor 2\ngpu0/gi0/access 3\ngpu0/gi0/ci0/access 4\ngpu0/gi0/ci1/access 5\n" +
		"gpu0/gi1/access 12\ngpu0/gi1/ci0/access 13\ngpu1/gi1/access 147\ngpu1/gi1/ci0/access 148\n\n"
	m, err := nvml.ParseMIGMinors([]byte(real))
	require.NoError(t, err)
	require.Equal(t, 1, m["config"])
	paths, err := m.CapPaths(0, 1, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"/dev/nvidia-caps/nvidia-cap12", "/dev/nvidia-caps/nvidia-cap13"}, paths)
	paths, err = m.CapPaths(1, 1, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"/dev/nvidia-caps/nvidia-cap147", "/dev/nvidia-caps/nvidia-cap148"}, paths)
	_, err = m.CapPaths(0, 1, 5)
	require.ErrorIs(t, err, nvml.ErrNoMIGCap)
	require.ErrorContains(t, err, "gpu0/gi1/ci5/access")

	for _, bad := range []string{"gpu0/gi0/access", "gpu0/gi0/access x", "gpu0/gi0/access -1", "a b c", "gpu0/gi0/access 99999999999999999999"} {
		_, err := nvml.ParseMIGMinors([]byte(bad))
		require.Error(t, err, bad)
		require.ErrorContains(t, err, "line 1")
	}
}

func TestReadMIGMinors(t *testing.T) {
	root := t.TempDir()
	_, err := nvml.ReadMIGMinors(root)
	require.ErrorIs(t, err, os.ErrNotExist)
	path := filepath.Join(root, nvml.MIGMinorsFile)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte("gpu3/gi2/access 30\ngpu3/gi2/ci0/access 31\n"), 0o644))
	m, err := nvml.ReadMIGMinors(root)
	require.NoError(t, err)
	require.Equal(t, nvml.MIGMinors{"gpu3/gi2/access": 30, "gpu3/gi2/ci0/access": 31}, m)
	require.NoError(t, os.WriteFile(path, make([]byte, 2<<20), 0o644))
	_, err = nvml.ReadMIGMinors(root)
	require.ErrorContains(t, err, "larger than")
}

// FuzzParseMIGMinors: any file content gives minors or an error, never a
// panic; every parsed minor is in range and CapPaths names nvidia-cap nodes.
func FuzzParseMIGMinors(f *testing.F) {
	f.Add("config 1\nmonitor 2\ngpu0/gi0/access 3\ngpu0/gi0/ci0/access 4\n")
	f.Add("gpu0/gi1/access 12\ngpu0/gi1/ci0/access 13\n\n  \n")
	f.Add("gpu0/gi0/access -1")
	f.Add("gpu0/gi0/access 1048576")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := nvml.ParseMIGMinors([]byte(in))
		if err != nil {
			require.Nil(t, m)
			return
		}
		for _, minor := range m {
			require.GreaterOrEqual(t, minor, 0)
			require.Less(t, minor, 1<<20)
		}
		if paths, err := m.CapPaths(0, 0, 0); err == nil {
			require.Len(t, paths, 2)
			for _, p := range paths {
				require.True(t, strings.HasPrefix(p, "/dev/nvidia-caps/nvidia-cap"), p)
			}
		}
	})
}
