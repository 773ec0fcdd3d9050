package main

import (
	"context"
	"errors"
	"io"
)

// errUsage marks a command-line mistake; it exits with status 2.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return nil
}
