package deviceplugin

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A kubelet the resync sees first (its kubelet.sock event lost) is a
// kubelet that started after this process did, whether another was seen
// before or none was: it admits the pods still pending as one batch, by
// creation time, so its start is marked (batchFor), once. Before, a kubelet
// appearing when none was seen at start was adopted without the mark.
func TestResyncMarksAKubeletSeenFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		seen string // kubeletSeen before the resync
	}{
		{name: "none seen at start", seen: ""},
		{name: "another seen before", seen: "1/2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, KubeletSocketName)
			require.NoError(t, os.WriteFile(sock, nil, 0o600))
			id := kubeletIdentity(sock)
			require.NotEmpty(t, id)
			m := &Manager{opts: Options{PluginDir: dir}, kubeletSeen: tc.seen}
			m.resync(context.Background(), "test")
			require.Equal(t, id, m.kubeletSeen)
			require.Equal(t, id, m.batchFor, "the new kubelet's batch is marked")
			// The same kubelet again: nothing changes.
			m.resync(context.Background(), "test")
			require.Equal(t, id, m.batchFor)
		})
	}
}
