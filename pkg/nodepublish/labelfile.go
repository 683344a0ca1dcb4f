package nodepublish

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// WriteLabels writes labels to w sorted by key, one key=value a line: the
// format of GPU Feature Discovery's output file (NFD's local feature
// source) and of `device-plugin --print-labels`.
func WriteLabels(w io.Writer, labels map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if _, err := fmt.Fprintf(w, "%s=%s\n", k, labels[k]); err != nil {
			return err
		}
	}
	return nil
}

// WriteLabelFile replaces the file at path with labels (WriteLabels'
// format) atomically: written to a temporary file in the same directory,
// then renamed over path, so that a reader (NFD) never sees half a file.
// The directory must exist (GFD's features.d, mounted from the host).
func WriteLabelFile(path string, labels map[string]string) error {
	var buf bytes.Buffer
	if err := WriteLabels(&buf, labels); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return fmt.Errorf("writing the label file %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename; left only on error
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing the label file %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing the label file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the label file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the label file %s: %w", path, err)
	}
	return nil
}
