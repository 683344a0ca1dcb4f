package nvml

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// MIGMinorsFile is where the driver lists the minors of its MIG capability
// device nodes, relative to the driver root.
const MIGMinorsFile = "proc/driver/nvidia-caps/mig-minors"

// MIGCapsDir is the directory of the MIG capability device nodes
// (/dev/nvidia-caps/nvidia-cap<minor>).
const MIGCapsDir = "/dev/nvidia-caps"

// maxMIGMinorsBytes bounds the file: 8 GPUs x 8 GPU instances x 8 compute
// instances is ~600 lines of ~25 bytes; 1 MiB is far beyond any driver.
const maxMIGMinorsBytes = 1 << 20

// MIGMinors maps a MIG capability ("gpu0/gi1/access", "gpu0/gi1/ci0/access",
// "config", "monitor") to the minor of the device node that guards it. The
// "gpu<N>" part is the GPU's device minor (GPU.Minor), as in
// nvidia-container-toolkit's nvcaps and NVIDIA's device plugin.
type MIGMinors map[string]int

// ReadMIGMinors reads <driverRoot>/proc/driver/nvidia-caps/mig-minors, whose
// lines are "<capability> <minor>", e.g.
//
//	config 1
//	monitor 2
//	gpu0/gi0/access 3
//	gpu0/gi0/ci0/access 4
func ReadMIGMinors(driverRoot string) (MIGMinors, error) {
	path := filepath.Join(driverRoot, MIGMinorsFile)
	data, err := readBounded(path, maxMIGMinorsBytes)
	if err != nil {
		return nil, fmt.Errorf("reading MIG capability minors: %w", err)
	}
	m, err := ParseMIGMinors(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// ParseMIGMinors parses the content of a mig-minors file. Blank lines are
// skipped; any other line must be "<capability> <minor>" with a minor in
// [0, 1<<20) (Linux minors are 20 bits).
func ParseMIGMinors(data []byte) (MIGMinors, error) {
	m := MIGMinors{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: want \"<capability> <minor>\", got %q", n, sc.Text())
		}
		minor, err := strconv.Atoi(fields[1])
		if err != nil || minor < 0 || minor >= 1<<20 {
			return nil, fmt.Errorf("line %d: minor %q is not a number in [0, %d)", n, fields[1], 1<<20)
		}
		m[fields[0]] = minor
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mig-minors: %w", err)
	}
	return m, nil
}

// ErrNoMIGCap is wrapped when a MIG instance has no capability minor.
var ErrNoMIGCap = errors.New("no MIG capability minor")

// CapPaths returns the device nodes guarding a MIG device: its GPU
// instance's and its compute instance's /dev/nvidia-caps/nvidia-cap<N>.
func (m MIGMinors) CapPaths(gpuMinor, gi, ci int) ([]string, error) {
	giCap := fmt.Sprintf("gpu%d/gi%d/access", gpuMinor, gi)
	ciCap := fmt.Sprintf("gpu%d/gi%d/ci%d/access", gpuMinor, gi, ci)
	out := make([]string, 0, 2)
	for _, c := range []string{giCap, ciCap} {
		minor, ok := m[c]
		if !ok {
			return nil, fmt.Errorf("%w for %s", ErrNoMIGCap, c)
		}
		out = append(out, fmt.Sprintf("%s/nvidia-cap%d", MIGCapsDir, minor))
	}
	return out, nil
}
