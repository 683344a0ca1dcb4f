package v1

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/agnivade/levenshtein"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var (
	configType       = reflect.TypeFor[Config]()
	unmarshalerType  = reflect.TypeFor[json.Unmarshaler]()
	metaDurationType = reflect.TypeFor[metav1.Duration]()
)

// nvidiaSections are NVIDIA's structs: a key gpupack does not know inside
// them is a warning, as NVIDIA's decoder silently ignores unknown keys and
// newer NVIDIA releases add fields. Everywhere else (the top level and
// gpupack's own sections) an unknown key is an error: a typo in one of our
// fields must not pass unnoticed.
var nvidiaSections = map[reflect.Type]bool{
	reflect.TypeFor[Flags]():              true,
	reflect.TypeFor[PluginFlags]():        true,
	reflect.TypeFor[GFDFlags]():           true,
	reflect.TypeFor[Resources]():          true,
	reflect.TypeFor[NamedPattern]():       true,
	reflect.TypeFor[Sharing]():            true,
	reflect.TypeFor[TimeSlicing]():        true,
	reflect.TypeFor[ReplicatedResource](): true,
	reflect.TypeFor[Imex]():               true,
}

// exactKeySections are NVIDIA's structs that NVIDIA decodes with its own
// UnmarshalJSON, looking each key up by its exact name: there a key that
// differs only in case (RenameByDefault, Replicas) is not the field but an
// unknown key NVIDIA ignores. encoding/json's case-insensitive match would
// make `RenameByDefault: true` rename the replicas under gpupack and not
// under NVIDIA.
var exactKeySections = map[reflect.Type]bool{
	reflect.TypeFor[TimeSlicing]():        true,
	reflect.TypeFor[ReplicatedResource](): true,
	reflect.TypeFor[NamedPattern]():       true,
}

// requiredKeys are the keys NVIDIA's decoder refuses a mapping without
// ("no replicas specified", "resources must have a 'name' field set").
var requiredKeys = map[reflect.Type][]string{
	reflect.TypeFor[ReplicatedResource](): {"name", "replicas"},
	reflect.TypeFor[NamedPattern]():       {"pattern", "name"},
}

// walker checks a decoded JSON tree against the Config types: unknown keys
// (errors or warnings, by section) and values the custom decoders refuse,
// each with its field path.
type walker struct {
	errs     field.ErrorList
	warnings Warnings
	// pruned: unknown keys were removed from the tree, which must then be
	// decoded instead of the file (see walkStruct).
	pruned bool
}

func (w *walker) walk(v any, t reflect.Type, p *field.Path) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		raw, _ := json.Marshal(v)
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			msg := err.Error()
			if n, ok := v.(float64); ok && t == metaDurationType {
				// metav1.Duration takes a string only; its own error says
				// "cannot unmarshal number into Go value of type string".
				msg = fmt.Sprintf("want a duration with a unit, such as \"%vs\" for %v seconds (a bare number has none here)", n, n)
			}
			// The value as decoded, not its JSON: a string is quoted once.
			w.errs = append(w.errs, field.Invalid(p, brief(v), briefMessage(msg)))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			w.errs = append(w.errs, field.Invalid(p, brief(v), "want a mapping, got "+kindOf(v)))
			return
		}
		w.walkStruct(m, t, p, nvidiaSections[t])
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			w.errs = append(w.errs, field.Invalid(p, brief(v), "want a list, got "+kindOf(v)+listHint(v)))
			return
		}
		for i, e := range list {
			w.walk(e, t.Elem(), p.Index(i))
		}
	default:
		raw, _ := json.Marshal(v)
		if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
			w.errs = append(w.errs, field.Invalid(p, brief(v), "want "+t.Kind().String()+", got "+kindOf(v)))
		}
	}
}

func (w *walker) walkStruct(m map[string]any, t reflect.Type, p *field.Path, lenient bool) {
	child := func(name string) *field.Path {
		if p == nil {
			return field.NewPath(name)
		}
		return p.Child(name)
	}
	exact := exactKeySections[t]
	var unknown []string
	keysOf := map[string][]string{} // field's JSON name -> the keys that decode into it
	for key, v := range m {
		f, ok := fieldByJSONName(t, key, exact)
		if ok {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			keysOf[name] = append(keysOf[name], key)
		}
		if !ok {
			if own := ownFieldLike(t, key); own != "" {
				w.errs = append(w.errs, field.Forbidden(child(key), "unknown field (gpupack's own field is "+own+")"))
				continue
			}
			if lenient {
				w.warnings = append(w.warnings, unknownField(t, key, child(key)))
				// Removed so that the final decode cannot match it to a
				// field case-insensitively where NVIDIA does not.
				delete(m, key)
				w.pruned = true
				unknown = append(unknown, key)
				continue
			}
			w.errs = append(w.errs, field.Forbidden(child(key), "unknown field (known: "+strings.Join(jsonNames(t), ", ")+")"))
			continue
		}
		w.walk(v, f.Type, child(key))
	}
	w.warnSameField(m, keysOf, child)
	for _, req := range requiredKeys[t] {
		if _, ok := m[req]; !ok {
			msg := "NVIDIA's plugin refuses " + p.String() + " without it"
			for _, k := range unknown {
				if levenshtein.ComputeDistance(strings.ToLower(k), req) <= 2 {
					msg += fmt.Sprintf(" (found %q, which NVIDIA does not read as %q)", k, req)
				}
			}
			w.errs = append(w.errs, field.Required(child(req), msg))
		}
	}
}

// warnSameField warns of keys of one mapping m that decode into one field,
// as keys differing only in letter case do (flags: {migStrategy: none,
// MigStrategy: mixed}), naming the keys and the value used. The file
// reaches the decoder as JSON with its keys in byte order (upper case
// before lower case), and encoding/json matches them case-insensitively,
// so the key last in byte order wins (mappings under both are merged, its
// values over the others'), as in NVIDIA's plugin, which decodes the same
// way.
func (w *walker) warnSameField(m map[string]any, keysOf map[string][]string, child func(string) *field.Path) {
	for name, keys := range keysOf {
		if len(keys) < 2 {
			continue
		}
		slices.Sort(keys)
		last := keys[len(keys)-1]
		var used string
		if _, ok := m[last].(map[string]any); ok {
			used = fmt.Sprintf("their mappings are merged, %s's values winning where several set a field", last)
		} else {
			used = fmt.Sprintf("%s's value, %s, is used", last, shownValue(m[last]))
		}
		w.warnings = append(w.warnings, Warning{Kind: WarningCaseVariantKeys, Field: child(name).String(), Message: fmt.Sprintf(
			"set by %d keys that differ only in letter case (%s): %s, because keys are read in byte order (A-Z before a-z, not the file's order) and the last one read wins, as NVIDIA's plugin's decoder does",
			len(keys), strings.Join(keys, ", "), used)})
	}
}

// notServedIfIgnored are the fields of NVIDIA's sections that shape what
// the node advertises, with what the node serves when a key meant for one
// is ignored (a key in another case inside sharing.timeSlicing, a typo):
// the config loads, as in NVIDIA's plugin, and the warning is marked
// NotServed.
var notServedIfIgnored = map[reflect.Type]map[string]string{
	reflect.TypeFor[Flags](): {
		"migStrategy": "the MIG strategy is not set by it (the default, none, serves GPUs with MIG enabled whole, not their MIG devices)",
	},
	reflect.TypeFor[Sharing](): {
		"timeSlicing": "nothing is time-sliced: whole devices are advertised, not replicas",
		"mps":         "nothing is shared with MPS: whole GPUs are advertised, not replicas",
	},
	reflect.TypeFor[TimeSlicing](): {
		"resources":       "the section shares nothing: whole devices are advertised, not replicas",
		"renameByDefault": "the replicas keep the resource's own name (not <name>.shared)",
	},
}

// unknownField is the warning of a key t does not have, ignored as NVIDIA's
// decoder ignores it, with the field it most likely meant and, when that
// field shapes what is advertised, what the node serves instead.
func unknownField(t reflect.Type, key string, p *field.Path) Warning {
	meant := likelyField(t, key)
	msg := "unknown field, ignored (as NVIDIA's plugin ignores it)"
	if meant != "" {
		msg += " (did you mean " + meant + "?)"
	}
	consequence, notServed := notServedIfIgnored[t][meant]
	if notServed {
		msg += ": " + consequence
	}
	return Warning{Kind: WarningUnknownField, Field: p.String(), Message: msg, NotServed: notServed}
}

// shownValue is a decoded value as a warning quotes it: its JSON, cut
// when long.
func shownValue(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if s := brief(string(raw)); s != string(raw) {
		return s.(string)
	}
	return string(raw)
}

// listHint tells how to write a list given as one string of
// comma-separated items ("48,79" for [48, 79]), "" otherwise.
func listHint(v any) string {
	s, ok := v.(string)
	if !ok || !strings.Contains(s, ",") {
		return ""
	}
	items := SplitList(s)
	if len(items) == 0 {
		return ""
	}
	return ": write a YAML list, [" + strings.Join(items, ", ") + "], not one string"
}

// likelyField names the field of t that an unknown key is most likely a
// typo of (another case, or at most 2 edits away), "" if none.
func likelyField(t reflect.Type, key string) string {
	best, bestD := "", 3
	for _, name := range jsonNames(t) {
		if d := levenshtein.ComputeDistance(strings.ToLower(key), strings.ToLower(name)); d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

// fieldByJSONName finds the field a JSON key decodes into, as encoding/json
// does: the exact name first, then (unless exact) a case-insensitive match.
func fieldByJSONName(t reflect.Type, key string, exact bool) (reflect.StructField, bool) {
	var fold *reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		if name == key {
			return f, true
		}
		if !exact && fold == nil && strings.EqualFold(name, key) {
			fold = &f
		}
	}
	if fold != nil {
		return *fold, true
	}
	return reflect.StructField{}, false
}

// ownFieldLike returns gpupack's own field of t that key is a typo of
// (a "gpupack" prefix, or at most 2 edits away), "" if none: typos in
// gpupack's fields are errors even inside NVIDIA's sections.
// Of several, the nearest (GPUPackRename is gpupackRename, not
// gpupackDevices).
func ownFieldLike(t reflect.Type, key string) string {
	best, bestD := "", -1
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("gpupack") != "own" {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		lk, ln := strings.ToLower(key), strings.ToLower(name)
		d := levenshtein.ComputeDistance(lk, ln)
		if (strings.HasPrefix(lk, "gpupack") && strings.HasPrefix(ln, "gpupack") || d <= 2) && (bestD < 0 || d < bestD) {
			best, bestD = name, d
		}
	}
	return best
}

func jsonNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// maxShownValue bounds the value an error quotes: a mapping given a list
// of a megabyte once made a megabyte-long error line.
const maxShownValue = 100

// brief is v for an error message: v itself when its JSON is short, else
// the start of its JSON, marked as cut.
func brief(v any) any {
	s, ok := v.(string)
	if !ok {
		raw, err := json.Marshal(v)
		if err != nil || len(raw) <= maxShownValue {
			return v
		}
		s = string(raw)
	}
	if len(s) <= maxShownValue {
		return v
	}
	return fmt.Sprintf("%s... (%d bytes)", strings.ToValidUTF8(s[:maxShownValue], ""), len(s))
}

// briefMessage cuts a decoder's message, which may quote the value too.
func briefMessage(m string) string {
	const maxMessage = 3 * maxShownValue
	if len(m) <= maxMessage {
		return m
	}
	return strings.ToValidUTF8(m[:maxMessage], "") + "..."
}
