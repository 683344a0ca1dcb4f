package app

import "strings"

// splitFakeMIGProfiles splits one GPU's --fake-mig value into its profiles.
// Profiles are joined by '+', but NVIDIA writes a profile's attributes with
// '+' too (1g.10gb+me, 1g.20gb+me.all, 7g.80gb+gfx-me). Every profile name
// starts with a digit (1g.10gb, 1c.2g.20gb) and no attribute does, so a '+'
// followed by a digit, or by nothing (an empty profile, refused by the
// caller), starts a new profile and any other '+' stays in the profile:
// "3g.40gb+1g.10gb+me" is 3g.40gb and 1g.10gb+me. Each part is trimmed.
func splitFakeMIGProfiles(v string) []string {
	var out []string
	for k, p := range strings.Split(v, "+") {
		p = strings.TrimSpace(p)
		if k > 0 && p != "" && (p[0] < '0' || p[0] > '9') && out[len(out)-1] != "" {
			out[len(out)-1] += "+" + p
			continue
		}
		out = append(out, p)
	}
	return out
}
