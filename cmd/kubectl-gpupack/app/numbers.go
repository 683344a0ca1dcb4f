package app

import (
	"bytes"
	"strconv"
)

// significantDigits is how many significant digits a fractional number of
// the JSON and YAML output keeps: sums of fractions of GPUs (0.1 + 0.2) come
// out as 0.3, not 0.30000000000000004. Twelve digits are far beyond what any
// figure here means (fragmentation in GPUs, ring bandwidths in GB/s, ratios)
// and within float64's 15-17.
const significantDigits = 12

// tidyNumbers rewrites every fractional number of a JSON document (one with
// a fraction or an exponent) with significantDigits significant digits,
// keeping everything else, key order included, byte for byte. Integers are
// kept as they are (byte counts, device counts). data must be valid JSON,
// as json.Marshal makes it.
func tidyNumbers(data []byte) []byte {
	out := make([]byte, 0, len(data))
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString:
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
			out = append(out, c)
		case c == '-' || (c >= '0' && c <= '9'):
			j := i + 1
			for j < len(data) && bytes.IndexByte([]byte("0123456789.eE+-"), data[j]) >= 0 {
				j++
			}
			out = append(out, tidyNumber(data[i:j])...)
			i = j - 1
		default:
			out = append(out, c)
		}
	}
	return out
}

// tidyNumber is one number token of tidyNumbers.
func tidyNumber(tok []byte) []byte {
	if bytes.IndexAny(tok, ".eE") < 0 {
		return tok
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return tok
	}
	return strconv.AppendFloat(nil, f, 'g', significantDigits, 64)
}
