// Package problem is the error type that reaches users: what went wrong, how
// to fix it, and which exit code it means. Domain packages return it where
// they know the fix; the CLI renders it once, without a stack trace.
package problem

import (
	"errors"
	"fmt"
)

// Exit codes, documented in `djdeploy --help`.
const (
	ExitOK      = 0
	ExitFailure = 1 // the operation failed (remote error, failed check, ...)
	ExitUsage   = 2 // bad input: flags, settings, config file, paths
)

// Error is a user-facing error.
type Error struct {
	Usage bool   // bad input: exit 2
	What  string // one line: what is wrong
	Fix   string // one line: how to fix it (optional)
	Err   error  // cause (optional; shown after What when it adds detail)
}

func (e *Error) Error() string {
	msg := e.What
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Usagef is bad input (exit 2) with a fix.
func Usagef(fix, format string, args ...any) *Error {
	return &Error{Usage: true, What: fmt.Sprintf(format, args...), Fix: fix}
}

// Failf is a failure (exit 1) with a fix.
func Failf(fix, format string, args ...any) *Error {
	return &Error{What: fmt.Sprintf(format, args...), Fix: fix}
}

// Wrap turns err into a failure with context and a fix.
func Wrap(err error, fix, format string, args ...any) *Error {
	return &Error{What: fmt.Sprintf(format, args...), Fix: fix, Err: err}
}

// As finds a *Error in the chain.
func As(err error) (*Error, bool) {
	var p *Error
	ok := errors.As(err, &p)
	return p, ok
}

// ExitCode maps any error to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if p, ok := As(err); ok && p.Usage {
		return ExitUsage
	}
	return ExitFailure
}
