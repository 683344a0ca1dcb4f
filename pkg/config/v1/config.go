package v1

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml2 "go.yaml.in/yaml/v2"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// MaxConfigBytes bounds a config file: a ConfigMap, where the file usually
// comes from, holds at most 1 MiB. A larger file is refused before it is
// parsed (a 50 MB file once took a minute and gigabytes to reject).
const MaxConfigBytes = 1 << 20

// Parse decodes a config file, applies the defaults and validates it; the
// warnings are dropped (use Decode to get them).
func Parse(data []byte) (*Config, error) {
	c, _, err := Decode(data)
	return c, err
}

// Decode decodes a config file (YAML or JSON), applies the defaults and
// validates it. An empty file and a file without `version` mean v1 with the
// defaults, as in NVIDIA's plugin. Every error is returned at once, with
// its field path; fields without effect come back as warnings.
func Decode(data []byte) (*Config, Warnings, error) {
	if len(data) > MaxConfigBytes {
		return nil, nil, fmt.Errorf("config is %d bytes, more than the %d allowed", len(data), MaxConfigBytes)
	}
	data, docWarning, err := oneDocument(data)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding config: %w", err)
	}
	j, dupWarning, err := toJSON(data)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding config: %w", locateBadByte(data, err))
	}
	j = bytes.TrimSpace(j)
	if len(j) == 0 || string(j) == "null" {
		j = []byte("{}")
	}
	var tree any
	if err := json.Unmarshal(j, &tree); err != nil {
		return nil, nil, fmt.Errorf("decoding config: %w", err)
	}
	if _, ok := tree.(map[string]any); !ok {
		return nil, nil, fmt.Errorf("decoding config: want a mapping at the top level, got %s", kindOf(tree))
	}
	if err := notAConfigMap(tree.(map[string]any)); err != nil {
		return nil, nil, fmt.Errorf("decoding config: %w", err)
	}
	if docWarning != nil {
		dupWarning = append(dupWarning, *docWarning)
	}
	w := &walker{warnings: dupWarning}
	w.walkStruct(tree.(map[string]any), configType, nil, false)
	if len(w.errs) > 0 {
		return nil, nil, fmt.Errorf("decoding config: %w", w.errs.ToAggregate())
	}
	if w.pruned {
		// Decode the tree without the unknown keys the walker dropped.
		if j, err = json.Marshal(tree); err != nil {
			return nil, nil, fmt.Errorf("decoding config: %w", err)
		}
	}
	var c Config
	if err := json.Unmarshal(j, &c); err != nil {
		return nil, nil, fmt.Errorf("decoding config: %w", err)
	}
	if c.Version == "" {
		c.Version = Version
	}
	qualifyNames(&c)
	SetDefaults(&c)
	warnings, errs := Unimplemented(&c)
	errs = append(errs, Validate(&c)...)
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("invalid config: %w", errs.ToAggregate())
	}
	return &c, append(w.warnings, warnings...).Sorted(), nil
}

// locateBadByte adds where the file's first byte the YAML decoder refuses
// is to err, when err is the decoder's refusal of a byte (not UTF-8, a
// control character), which it reports without a line: a comment saved in
// Latin-1 ("# réplicas") once failed with "yaml: invalid trailing UTF-8
// octet" alone. A file starting with a UTF-16 byte order mark is decoded
// as UTF-16 by the decoder and is left as it is.
func locateBadByte(data []byte, err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "UTF-8 octet") && !strings.Contains(msg, "control characters are not allowed") {
		return err
	}
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return err
	}
	line, col := 1, 1
	for off := 0; off < len(data); {
		r, size := utf8.DecodeRune(data[off:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return fmt.Errorf("%w: line %d, column %d: byte 0x%02x is not UTF-8 (save the file as UTF-8)", err, line, col, data[off])
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r', r == 0x7f:
			return fmt.Errorf("%w: line %d, column %d: control character %U", err, line, col, r)
		case r == '\n':
			line, col = line+1, 0
		}
		off += size
		col++
	}
	return err
}

// notAConfigMap refuses a Kubernetes ConfigMap given as the config file
// (an admin's easy slip with the GPU Operator's time-slicing ConfigMaps),
// naming the configs it holds, rather than listing its keys as unknown
// fields (NVIDIA's plugin loads it silently as the default config).
func notAConfigMap(top map[string]any) error {
	if kind, _ := top["kind"].(string); kind != "ConfigMap" {
		return nil
	}
	var names []string
	if data, ok := top["data"].(map[string]any); ok {
		for k := range data {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return fmt.Errorf("the file is a Kubernetes ConfigMap holding the configs [%s], not a config: give the plugin one of them (a mounted ConfigMap volume has one file per config; --config-file-srcdir chooses one by node label)", strings.Join(names, ", "))
}

// oneDocument returns the one YAML document of the file that has content.
// A file of several, such as two configs pasted into one file, is refused:
// NVIDIA's plugin (sigs.k8s.io/yaml) would read the first and silently drop
// the others, so the sharing a later document sets would not apply. The
// documents are those of the YAML parser sigs.k8s.io/yaml uses
// (go.yaml.in/yaml/v2), so every way of writing them counts: `---` lines,
// `--- {inline}` starts, `...` ends; a later document it cannot parse is
// refused with its error. Empty documents (a leading or trailing `---`, a
// comment before the first `---`) do not count; when the one with content
// is not the first document, NVIDIA's plugin would read the empty first
// one and run with the defaults: gpupack reads the config and says so in
// the warning.
func oneDocument(data []byte) (doc []byte, warning *Warning, err error) {
	dec := yaml2.NewDecoder(bytes.NewReader(data))
	content, firstEmpty := 0, false
	for n := 0; ; n++ {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			break
		}
		if err != nil {
			if n == 0 {
				return data, nil, nil // the decoder reports unreadable YAML with its line
			}
			return nil, nil, fmt.Errorf("YAML document %d of the file: %w (NVIDIA's plugin would read the first document only)", n+1, err)
		}
		if v != nil {
			content++
		} else if n == 0 {
			firstEmpty = true
		}
	}
	switch {
	case content > 1:
		return nil, nil, fmt.Errorf("the file holds %d YAML documents with content (separated by ---), not one config: "+
			"NVIDIA's plugin would read the first and ignore the rest; give one config per file "+
			"(several named configs: one file each in --config-file-srcdir)", content)
	case content == 1 && firstEmpty:
		d, err := contentDocument(data)
		if err != nil {
			return nil, nil, err
		}
		return d, &Warning{Kind: WarningNotFirstDocument,
			Message: "the config is not the file's first YAML document: NVIDIA's plugin reads only the first (empty here) and would run with the defaults"}, nil
	}
	return data, nil, nil
}

// contentDocument is the text of the file's one YAML document with content
// (oneDocument found one, after an empty first one), cut at its `---`
// lines so that toJSON reports duplicate keys in it with their lines.
func contentDocument(data []byte) ([]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var found [][]byte
	for {
		d, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the YAML documents: %w", err)
		}
		if j, err := yaml.YAMLToJSON(d); err != nil || (strings.TrimSpace(string(j)) != "" && strings.TrimSpace(string(j)) != "null") {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("the file's one YAML document with content could not be cut out at its --- lines (%d parts): start the config with --- on a line of its own", len(found))
	}
	return found[0], nil
}

// toJSON converts the file to JSON. A key given twice in one mapping
// loads with its last value, as in NVIDIA's plugin (sigs.k8s.io/yaml's
// non-strict Unmarshal), with a warning for each (duplicateKeys).
func toJSON(data []byte) ([]byte, Warnings, error) {
	j, strictErr := yaml.YAMLToJSONStrict(data)
	if strictErr == nil {
		return j, nil, nil
	}
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, nil, err
	}
	return j, duplicateKeys(data, strictErr), nil
}

// strictDuplicate is one line of the strict decoder's error: the line of
// the later value of a key given twice, and the key as it quotes it.
var strictDuplicate = regexp.MustCompile(`line (\d+): key (.+) already set in map`)

// duplicateKeys describes each key given twice in one mapping of data:
// its field path, the value used (the last, as NVIDIA's plugin's decoder
// keeps it) and the one dropped, and the line of the later key. The
// duplicates are found in an ordered decode of the file, in the order the
// strict decoder reports them (strictErr: a later value's inner duplicates
// before it), whose lines are matched to them one for one; when the
// ordered decode fails, the strict decoder's lines alone are told.
//
// The strict decoder also refuses a key that a YAML merge (<<: *anchor)
// brings into a mapping that sets it too, or that two merged mappings
// share: no duplicate, the merge decides the value, as NVIDIA's plugin's
// decoder (go-yaml v2) applies it. The ordered
// decode leaves merged keys out, so it finds the keys written twice only:
// when it finds none, there is no warning; when it finds another number
// than the strict decoder's lines, they are told without a line.
func duplicateKeys(data []byte, strictErr error) Warnings {
	var found []duplicate
	var doc yaml2.MapSlice
	decoded := yaml2.Unmarshal(data, &doc) == nil
	if decoded {
		findDuplicates(doc, nil, new(int), &found)
		if len(found) == 0 {
			return nil
		}
	}
	lines := strictDuplicate.FindAllStringSubmatch(strictErr.Error(), -1)
	var out Warnings
	if !decoded {
		for _, l := range lines {
			out = append(out, Warning{Kind: WarningDuplicateKey, Message: fmt.Sprintf(
				"line %s: key %s given twice in one mapping: the last value is used, as NVIDIA's plugin's decoder keeps it", l[1], l[2])})
		}
		if len(out) == 0 {
			out = append(out, Warning{Kind: WarningDuplicateKey, Message: strings.Join(strings.Fields(strictErr.Error()), " ") +
				": the last value is used, as NVIDIA's plugin's decoder keeps it"})
		}
		return out
	}
	text := strings.Split(string(data), "\n")
	// One warning per key of a mapping: its last repetition's.
	last := map[[2]any]int{}
	for i, d := range found {
		last[[2]any{d.mapping, d.key}] = i
	}
	for i, d := range found {
		if last[[2]any{d.mapping, d.key}] != i {
			continue
		}
		at := ""
		if len(found) == len(lines) {
			line, _ := strconv.Atoi(lines[i][1])
			at = fmt.Sprintf(" (the last at line %d)", keyLine(text, line, d.key))
		}
		var used string
		switch d.last.(type) {
		case yaml2.MapSlice:
			used = "the last mapping is used whole, the earlier one dropped (not merged)"
		case []any:
			used = "the last list is used, the earlier one dropped"
		case nil:
			used = "the last value, null, is used"
		default:
			used = fmt.Sprintf("the last value, %s, is used", yamlValue(d.last))
			if d.count == 2 {
				used += fmt.Sprintf(" and %s is dropped", yamlValue(d.first))
			}
		}
		out = append(out, Warning{Kind: WarningDuplicateKey, Field: d.path.String(), Message: fmt.Sprintf(
			"key %q given %d times in one mapping%s: %s, as NVIDIA's plugin's decoder keeps the last",
			d.key, d.count, at, used)})
	}
	return out
}

// duplicate is a key given more than once in one mapping.
type duplicate struct {
	mapping     int // which mapping of the file (findDuplicates' count)
	path        *field.Path
	key         string
	count       int
	first, last any
}

// findDuplicates walks v in the strict decoder's order (each value before
// its key's duplicate check) and appends each repeated key once per
// repetition, with the values the key had first and has now.
func findDuplicates(v any, p *field.Path, mappings *int, out *[]duplicate) {
	child := func(k string) *field.Path {
		if p == nil {
			return field.NewPath(k)
		}
		return p.Child(k)
	}
	switch v := v.(type) {
	case yaml2.MapSlice:
		*mappings++
		id := *mappings
		seen := map[any]int{}
		first := map[any]any{}
		for _, item := range v {
			key := fmt.Sprint(item.Key)
			findDuplicates(item.Value, child(key), mappings, out)
			n := seen[item.Key]
			seen[item.Key] = n + 1
			if n == 0 {
				first[item.Key] = item.Value
				continue
			}
			*out = append(*out, duplicate{mapping: id, path: child(key), key: key, count: n + 1, first: first[item.Key], last: item.Value})
		}
	case []any:
		if p == nil {
			return // not a config: the walker refuses it
		}
		for i, e := range v {
			findDuplicates(e, p.Index(i), mappings, out)
		}
	}
}

// keyLine is the line (1-based) of key at or before line, where the strict
// decoder reports the key's value: a mapping or list value starts on the
// line after its key. line itself when the key is not found there.
func keyLine(text []string, line int, key string) int {
	re := regexp.MustCompile(`(^|[\s{,-])["']?` + regexp.QuoteMeta(key) + `["']?\s*:`)
	for l := min(line, len(text)); l >= 1 && l > line-50; l-- {
		if re.MatchString(text[l-1]) {
			return l
		}
	}
	return line
}

// yamlValue is a scalar as a warning quotes it: a string quoted, others
// as they are.
func yamlValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(brief(v))
}

// Load reads and decodes the config file at path; a file over
// MaxConfigBytes is refused without reading it all.
func Load(path string) (*Config, Warnings, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading config: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	if len(data) > MaxConfigBytes {
		return nil, nil, fmt.Errorf("%s: config is larger than the %d bytes allowed", path, MaxConfigBytes)
	}
	c, warnings, err := Decode(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, warnings, nil
}

// Default returns the config used when there is no file.
func Default() *Config {
	c := &Config{Version: Version}
	SetDefaults(c)
	return c
}

// qualifyNames gives NVIDIA's fields' resource names the nvidia.com/
// prefix when they lack it, as NVIDIA's plugin does, and gpupackRename
// too when it is a bare name (no '/': gpu.small is nvidia.com/gpu.small,
// as `name: gpu` is nvidia.com/gpu); a gpupackRename under another prefix
// is left for Validate to refuse.
func qualifyNames(c *Config) {
	for _, ts := range []*TimeSlicing{&c.Sharing.TimeSlicing, c.Sharing.MPS} {
		if ts == nil {
			continue
		}
		for i := range ts.Resources {
			r := &ts.Resources[i]
			r.Name = QualifyResourceName(r.Name)
			r.Rename = QualifyResourceName(r.Rename)
			if !strings.Contains(r.GPUPackRename, "/") {
				r.GPUPackRename = QualifyResourceName(r.GPUPackRename)
			}
		}
	}
}
