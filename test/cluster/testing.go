package cluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// binDir is where hack/cluster/build.sh leaves the binaries: $GPUPACK_BIN,
// else .cache/bin at the repository root (two levels above test/<pkg>).
func binDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("GPUPACK_BIN"); d != "" {
		return d
	}
	d, err := filepath.Abs("../../.cache/bin")
	require.NoError(t, err)
	return d
}

// StartForTest starts a control plane with kwok, stopped at the end of the
// test. It skips the test, saying why, when the binaries were not built.
func StartForTest(t testing.TB, users ...Identity) *ControlPlane {
	t.Helper()
	return StartForTestWith(t, Config{Users: users})
}

// StartForTestWith is StartForTest with cfg's Users and PodSecurity (its
// BinDir and Dir are the test's).
func StartForTestWith(t testing.TB, cfg Config) *ControlPlane {
	t.Helper()
	dir := binDir(t)
	if err := CheckBinaries(dir); err != nil {
		t.Skipf("skipping: %v (make test builds them)", err)
	}
	ctx := context.Background()
	cfg.BinDir, cfg.Dir = dir, t.TempDir()
	cp, err := Start(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { cp.Stop(ctx) })
	require.NoError(t, cp.StartKwok(ctx))
	return cp
}

// HelmForTest returns the helm binary hack/cluster/build.sh built, or skips
// the test, saying why, when it was not built.
func HelmForTest(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(binDir(t), "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("skipping: helm not in %s: run hack/cluster/build.sh helm (make test builds it)", filepath.Dir(bin))
	}
	return bin
}
