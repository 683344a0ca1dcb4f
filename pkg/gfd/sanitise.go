package gfd

import (
	"regexp"
	"strings"
)

// unsafe are the characters GFD removes from a product name part.
var unsafe = regexp.MustCompile(`[^A-Za-z0-9._ -]`)

// Sanitise is GFD's sanitising of a product name part: characters other
// than letters, digits, '-', '_', '.' and spaces are removed, then runs of
// blanks become one '-' (leading and trailing blanks are dropped).
//
//	"NVIDIA A100-SXM4-40GB"   -> "NVIDIA-A100-SXM4-40GB"
//	"GeForce RTX 4090 (OEM)" -> "GeForce-RTX-4090-OEM"
//	"  Tesla  T4 "            -> "Tesla-T4"
//
// The result is not cut to a label's 63 characters: a value that is still
// not a valid label value is left out of the labels (validLabels), as NFD
// leaves out such a value of GFD's.
func Sanitise(s string) string {
	return strings.Join(strings.Fields(unsafe.ReplaceAllString(s, "")), "-")
}

// machineValue is GFD's value of nvidia.com/gpu.machine: the DMI product
// name with each space replaced by '-' (GFD does nothing else to it);
// "unknown" when it could not be read.
func machineValue(machine string) string {
	machine = strings.TrimSpace(machine)
	if machine == "" {
		return "unknown"
	}
	return strings.ReplaceAll(machine, " ", "-")
}

// productName joins sanitised parts with '-', skipping empty ones, and
// adds -SHARED for a shared resource whose replicas keep its name.
func productName(shared bool, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, Sanitise(p))
		}
	}
	if len(out) == 0 {
		return ""
	}
	if shared {
		out = append(out, "SHARED")
	}
	return strings.Join(out, "-")
}
