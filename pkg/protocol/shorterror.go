package protocol

import (
	"fmt"
	"unicode/utf8"
)

// shortError is err with its message cut to at most MaxErrorBytes (on a
// rune boundary, with a note of how many bytes were left out); errors.Is
// and errors.As still see err. nil stays nil.
func shortError(err error) error {
	if err == nil || len(err.Error()) <= MaxErrorBytes {
		return err
	}
	msg := err.Error()
	// The note is at most len(" ... (262144 more bytes)") = 24 bytes for
	// a message up to MaxPayload long; 32 leaves room for any length.
	cut := MaxErrorBytes - 32
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return &cutError{msg: fmt.Sprintf("%s ... (%d more bytes)", msg[:cut], len(msg)-cut), err: err}
}

// cutError is an error whose message shortError cut.
type cutError struct {
	msg string
	err error
}

func (e *cutError) Error() string { return e.msg }
func (e *cutError) Unwrap() error { return e.err }
