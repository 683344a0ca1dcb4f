// Command dockerfile-lint checks Dockerfiles with BuildKit's own parser and
// the lint rules `docker build --check` runs (github.com/moby/buildkit
// frontend/dockerfile/linter), plus what gpupack's multi-arch images need:
// every build stage runs on $BUILDPLATFORM and cross-compiles for
// $TARGETARCH, and no stage starts from a `latest` or untagged image.
//
// It is its own Go module so that BuildKit's dependencies never enter
// gpupack's go.mod. Usage: go run . FILE... (exit 1 on any finding).
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile-lint FILE...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		findings, err := check(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		for _, f := range findings {
			fmt.Fprintf(os.Stderr, "%s: %s\n", path, f)
			failed = true
		}
		if len(findings) == 0 {
			fmt.Printf("%s: ok\n", path)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// check parses one Dockerfile and returns every lint finding.
func check(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	var findings []string
	for _, w := range res.Warnings {
		findings = append(findings, "parser: "+w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		findings = append(findings, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return nil, fmt.Errorf("instructions: %w", err)
	}
	return append(findings, multiArch(stages)...), nil
}

// multiArch checks the stages of a multi-arch image: all but the last
// (the runtime image) build on $BUILDPLATFORM and declare TARGETARCH; no
// image is `latest` or untagged (a digest also pins it).
func multiArch(stages []instructions.Stage) []string {
	var findings []string
	if len(stages) < 2 {
		return []string{"want a build stage and a runtime stage"}
	}
	for i, s := range stages {
		if img := s.BaseName; !strings.Contains(img, "@") && (!strings.Contains(img, ":") || strings.HasSuffix(img, ":latest")) {
			findings = append(findings, fmt.Sprintf("stage %d: image %q is not pinned to a tag or digest", i, img))
		}
		if i == len(stages)-1 {
			continue
		}
		if s.Platform != "$BUILDPLATFORM" {
			findings = append(findings, fmt.Sprintf("stage %d (%s): builds on %q, want --platform=$BUILDPLATFORM", i, s.Name, s.Platform))
		}
		if !declares(s, "TARGETARCH") {
			findings = append(findings, fmt.Sprintf("stage %d (%s): does not declare ARG TARGETARCH", i, s.Name))
		}
	}
	return findings
}

func declares(s instructions.Stage, arg string) bool {
	for _, c := range s.Commands {
		if a, ok := c.(*instructions.ArgCommand); ok {
			for _, kv := range a.Args {
				if kv.Key == arg {
					return true
				}
			}
		}
	}
	return false
}
