package protocol

import (
	"fmt"

	"github.com/gpupack/gpupack/pkg/deviceid"
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
	head := deviceid.Prefix(msg, MaxErrorBytes-32)
	return &cutError{msg: fmt.Sprintf("%s ... (%d more bytes)", head, len(msg)-len(head)), err: err}
}

// cutError is an error whose message shortError cut.
type cutError struct {
	msg string
	err error
}

func (e *cutError) Error() string { return e.msg }
func (e *cutError) Unwrap() error { return e.err }
