package v1

import (
	"cmp"
	"slices"
)

// WarningKind says what a config warning is about. The device plugin logs
// every config warning with one message, "Config warning", and the kind as
// its `kind` key, so that one grep finds them all and one more picks a kind.
type WarningKind string

// The kinds of config warnings.
const (
	// WarningIgnoredField: a NVIDIA field that is read but not acted on
	// (NVIDIA's plugin ignores most of them too): resources.gpus, a
	// resource's rename or devices, flags.useNodeFeatureAPI, ...
	WarningIgnoredField WarningKind = "ignored-field"
	// WarningUnknownField: a key NVIDIA's sections do not have, ignored as
	// NVIDIA's decoder ignores it (inside sharing.timeSlicing and
	// sharing.mps that includes a key in another letter case: Resources).
	WarningUnknownField WarningKind = "unknown-field"
	// WarningDuplicateKey: a key given twice in one mapping; the last
	// value is used.
	WarningDuplicateKey WarningKind = "duplicate-key"
	// WarningCaseVariantKeys: keys that differ only in letter case set one
	// field (migStrategy, MigStrategy); the last in byte order wins.
	WarningCaseVariantKeys WarningKind = "case-variant-keys"
	// WarningNotFirstDocument: the config follows an empty first YAML
	// document, which is all NVIDIA's plugin would read.
	WarningNotFirstDocument WarningKind = "not-first-document"
	// WarningNoEffect: a field that is set but changes nothing beside the
	// others (replicaPolicy spread under MPS, an empty sharing.mps).
	WarningNoEffect WarningKind = "no-effect"
)

// Warning is one thing a loaded config does that its author may not
// expect; the config still loads, as in NVIDIA's plugin.
type Warning struct {
	Kind WarningKind
	// Field is the field's path with its keys as written in the file
	// (sharing.TimeSlicing.Resources); "" for the whole file.
	Field string
	// Message says what happens to the field and why, without its path.
	Message string
	// NotServed marks the warnings under which the node does not
	// advertise what the field, as written, asks for: a sharing section
	// or its resources ignored (whole GPUs served instead of replicas),
	// replicas under another name or on other devices. The device plugin
	// logs them at error level and records a Warning event on its Node.
	NotServed bool
}

// String is the warning as one line: the field's path, then the message.
func (w Warning) String() string {
	if w.Field == "" {
		return w.Message
	}
	return w.Field + ": " + w.Message
}

// Warnings are a config's warnings, sorted by field and without duplicates.
type Warnings []Warning

// Strings are the warnings' lines (Warning.String), in order.
func (ws Warnings) Strings() []string {
	if len(ws) == 0 {
		return nil
	}
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.String()
	}
	return out
}

// NotServed are the warnings under which a field is not served as
// written (Warning.NotServed).
func (ws Warnings) NotServed() Warnings {
	var out Warnings
	for _, w := range ws {
		if w.NotServed {
			out = append(out, w)
		}
	}
	return out
}

// Sorted returns the warnings sorted by field, kind and message, each once.
func (ws Warnings) Sorted() Warnings {
	out := slices.Clone(ws)
	slices.SortFunc(out, func(a, b Warning) int {
		return cmp.Or(cmp.Compare(a.Field, b.Field), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Message, b.Message))
	})
	return slices.Compact(out)
}
