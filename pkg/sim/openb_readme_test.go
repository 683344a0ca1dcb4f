package sim

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testdata/openb/README.md gives each pod list's task count as the files
// have it: it said "8152 tasks each", which five of the eleven are not.
func TestOpenbREADMETaskCounts(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(openbDir, "README.md"))
	require.NoError(t, err)
	row := regexp.MustCompile(`(?m)^\| (\w+) \| (\d+) \| (\d+) \|$`)
	listed := map[string][2]int{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		tasks, _ := strconv.Atoi(m[2])
		cpuOnly, _ := strconv.Atoi(m[3])
		listed[m[1]] = [2]int{tasks, cpuOnly}
	}
	files, err := filepath.Glob(filepath.Join(openbDir, "openb_pod_list_*.csv"))
	require.NoError(t, err)
	require.Len(t, files, 11)
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "openb_pod_list_"), ".csv")
		t.Run(name, func(t *testing.T) {
			tasks, err := ReadTasksFile(f)
			require.NoError(t, err)
			cpuOnly := 0
			for _, task := range tasks {
				if task.NumGPU == 0 {
					cpuOnly++
				}
			}
			got, ok := listed[name]
			require.True(t, ok, "README.md has no row for %s", name)
			require.Equal(t, [2]int{len(tasks), cpuOnly}, got, "README.md's tasks and CPU-only tasks of %s", name)
		})
	}
	require.Len(t, listed, len(files), "README.md lists a pod list that does not ship")
}
