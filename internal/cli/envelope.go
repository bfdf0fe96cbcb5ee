package cli

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/redact"
	"github.com/spf13/cobra"
)

// SchemaVersion is the version of the --json envelope. It changes only when
// a field is removed or changes meaning; new fields do not change it.
const SchemaVersion = 1

// Outcomes a command's envelope reports.
const (
	OutcomeSucceeded  = "succeeded"
	OutcomeFailed     = "failed"
	OutcomePlanned    = "planned"     // --plan, --dry-run: nothing was changed
	OutcomeRolledBack = "rolled-back" // a swap that failed verification and was undone
	OutcomeRunning    = "running"     // the emulator: ready, and serving until stopped
)

// Error codes of the envelope's error, one per exit code.
const (
	CodeUsage       = "usage"       // exit 2: bad input, nothing was changed
	CodeFailure     = "failure"     // exit 1
	CodeInterrupted = "interrupted" // exit 1: Ctrl-C or SIGTERM
)

// Envelope is what every command prints on stdout with --json, on success
// and on failure alike: one document whose shape does not depend on the
// command. internal/cli/json-output.schema.json describes it, with each command's
// result; arrays in it are never null.
type Envelope struct {
	SchemaVersion int            `json:"schemaVersion"`
	Command       string         `json:"command"`
	Outcome       string         `json:"outcome"`
	Result        any            `json:"result"`
	Error         *EnvelopeError `json:"error"`
}

// EnvelopeError is a failed command's message and fix, as stderr shows them.
type EnvelopeError struct {
	Message  string `json:"message"`
	Fix      string `json:"fix"`
	Code     string `json:"code"`
	ExitCode int    `json:"exitCode"`
}

// jsonState is what a command hands to its --json envelope.
type jsonState struct {
	result    any
	resultSet bool
	outcome   string
	printed   bool
}

// Result hands v, the command's result, to the --json envelope, and
// reports whether the command should print its human-readable form
// instead: false when --json was given. Call it once the result is known,
// also when the command is about to fail with a partial result (a swap that
// was undone says so in its result). Commands do not print JSON themselves.
//
//	if env.Result(cmd, res) {
//		fmt.Fprintf(env.Out, "...", ...)
//	}
func (e *Env) Result(cmd *cobra.Command, v any) (human bool) {
	e.json.result, e.json.resultSet = v, true
	return !wantsJSON(cmd)
}

// Outcome overrides the envelope's outcome, which is otherwise succeeded
// without an error and failed with one: planned, rolled-back, ...
func (e *Env) Outcome(o string) { e.json.outcome = o }

// EmitNow prints the envelope at once, for a command that keeps running
// after its result is known (the emulator prints it when ready). Main then
// prints nothing more on success.
func (e *Env) EmitNow(cmd *cobra.Command) error {
	if !wantsJSON(cmd) || e.json.printed {
		return nil
	}
	e.json.printed = true
	return e.printEnvelope(commandName(cmd), nil)
}

// addJSONFlag gives every command that runs (not the groups, djdeploy
// static and djdeploy ci, which only print their help) the same --json.
func addJSONFlag(c *cobra.Command) {
	if c.Runnable() && c.Flags().Lookup("json") == nil {
		c.Flags().Bool("json", false, "print the result (or the error) as one JSON document on stdout; see internal/cli/json-output.schema.json")
	}
	for _, sub := range c.Commands() {
		addJSONFlag(sub)
	}
}

// wantsJSON reports whether --json was given to cmd.
func wantsJSON(cmd *cobra.Command) bool {
	if cmd == nil {
		return false
	}
	f := cmd.Flags().Lookup("json")
	return f != nil && f.Value.String() == "true"
}

// argsWantJSON is wantsJSON for a command line whose flags could not be
// parsed: a mistyped flag still gets its error as JSON.
func argsWantJSON(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--json" || a == "--json=true" || a == "--json=1" {
			return true
		}
	}
	return false
}

func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()), " ")
}

// finishJSON prints the envelope for cmd's run, if --json asked for one,
// and reports whether it did. Help output gets none.
func (e *Env) finishJSON(cmd *cobra.Command, args []string, err error) bool {
	if cmd == nil || cmd.Flags().Lookup("json") == nil || !(wantsJSON(cmd) || (err != nil && argsWantJSON(args))) {
		// no --json on a group (djdeploy static): its usage error is on
		// stderr only
		return false
	}
	if h := cmd.Flags().Lookup("help"); h != nil && h.Changed {
		return false
	}
	if e.json.printed {
		// The emulator printed its envelope when it was ready: a later
		// failure is on stderr only.
		return true
	}
	if err == nil && !e.json.resultSet {
		// A command that only prints help (djdeploy static).
		return false
	}
	e.json.printed = true
	if perr := e.printEnvelope(commandName(cmd), err); perr != nil {
		fmt.Fprintf(e.Err, "error: writing the JSON output: %v\n", perr)
	}
	return true
}

func (e *Env) printEnvelope(command string, err error) error {
	env := Envelope{SchemaVersion: SchemaVersion, Command: command, Outcome: OutcomeSucceeded, Result: nonNil(e.json.result)}
	if err != nil {
		env.Outcome = OutcomeFailed
		env.Error = envelopeError(err)
	}
	if e.json.outcome != "" {
		env.Outcome = e.json.outcome
	}
	enc := json.NewEncoder(e.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(env)
}

// envelopeError is renderError's message and fix as data.
func envelopeError(err error) *EnvelopeError {
	out := &EnvelopeError{Code: CodeFailure, ExitCode: problem.ExitFailure}
	var ee exitError
	switch {
	case errors.As(err, &ee):
		out.ExitCode = ee.code
		out.Message, out.Fix = ee.msg, ee.fix
		if out.Message == "" {
			out.Message = "the command failed; its log says why"
		}
	case errors.Is(err, context.Canceled):
		out.Code = CodeInterrupted
		out.Message = "interrupted; nothing more was changed"
		out.Fix = "re-run the same command to resume"
	default:
		out.Message = cutLines(redact.SAS(err.Error()))
		if p, ok := problem.As(err); ok {
			out.Fix = cutLines(redact.SAS(p.Fix))
		}
		out.ExitCode = problem.ExitCode(err)
	}
	if out.ExitCode == problem.ExitUsage {
		out.Code = CodeUsage
	}
	return out
}

// DecodeEnvelope reads a --json document and its result into result (when
// not nil): for scripts and tests that want one command's result.
func DecodeEnvelope(data []byte, result any) (*Envelope, error) {
	var raw struct {
		Envelope
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw.SchemaVersion == 0 {
		return nil, fmt.Errorf("not a djdeploy --json envelope (no schemaVersion)")
	}
	env := raw.Envelope
	env.Result = raw.Result
	if result != nil && len(raw.Result) > 0 && string(raw.Result) != "null" {
		if err := json.Unmarshal(raw.Result, result); err != nil {
			return &env, fmt.Errorf("decoding the result of %s: %w", env.Command, err)
		}
	}
	return &env, nil
}

// nonNil returns a copy of v in which every nil slice is empty and every nil
// map is empty, so that JSON readers never meet null where a list or an
// object belongs. Values that marshal themselves are left as they are.
func nonNil(v any) any {
	if v == nil {
		return nil
	}
	return fillNil(reflect.ValueOf(v)).Interface()
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

func fillNil(v reflect.Value) reflect.Value {
	t := v.Type()
	if t.Implements(jsonMarshaler) || t.Implements(textMarshaler) ||
		reflect.PointerTo(t).Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(textMarshaler) {
		return v
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(fillNil(v.Elem()))
		return p
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(t).Elem()
		out.Set(fillNil(v.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(t).Elem()
		for i := 0; i < t.NumField(); i++ {
			if !t.Field(i).IsExported() {
				continue
			}
			out.Field(i).Set(fillNil(v.Field(i)))
		}
		return out
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return v // []byte is a base64 string
		}
		out := reflect.MakeSlice(t, v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(fillNil(v.Index(i)))
		}
		return out
	case reflect.Map:
		out := reflect.MakeMapWithSize(t, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			out.SetMapIndex(iter.Key(), fillNil(iter.Value()))
		}
		return out
	}
	return v
}
