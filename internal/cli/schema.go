package cli

import (
	"encoding/json"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/cdn"
	"github.com/djdeploy/djdeploy/internal/release"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// resultTypes are the Go types of each command's --json result; the
// schema (internal/cli/json-output.schema.json) is generated from them, so it says
// exactly what the commands print. A command with several kinds of result
// (release, release --plan, a multi-region rollout) lists each.
var resultTypes = map[string][]any{}

// describeResult declares the result types of command (its path below
// djdeploy: "static sync"). Every command that calls env.Result must be
// declared: the schema only accepts the commands it knows. Call it from
// the command file's init.
func describeResult(command string, zero ...any) {
	resultTypes[command] = append(resultTypes[command], zero...)
}

func init() {
	describeResult("build", buildSummary{})
	describeResult("static sync", staticSyncOutput{})
	describeResult("static prune", staticsync.PruneResult{})
	describeResult("static mark-production", markResult{})
	describeResult("deploy", deployOutput{})
	describeResult("swap", appservice.SwapReport{})
	describeResult("purge", cdn.Result{})
	describeResult("release", report.Release{}, release.PlanResult{}, release.Rollout{})
	describeResult("preview", report.Release{})
	describeResult("doctor", doctorResult{})
	describeResult("emulator", emulatorResult{})
	describeResult("ci github", report.Release{})
	describeResult("ci azure-pipelines", report.Release{})
	describeResult("version", versionResult{})
	describeResult("settings", settingsResult{})
}

// Schema returns the JSON Schema (draft 2020-12) of the --json envelope
// with every command's result.
func Schema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	var commands []string
	for c := range resultTypes {
		commands = append(commands, c)
	}
	sort.Strings(commands)
	var byCommand []any
	for _, c := range commands {
		var alts []any
		for _, z := range resultTypes[c] {
			alts = append(alts, g.schema(reflect.TypeOf(z)))
		}
		res := any(map[string]any{"anyOf": append([]any{map[string]any{"type": "null"}}, alts...)})
		byCommand = append(byCommand, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"command": map[string]any{"const": c}}},
			"then": map[string]any{"properties": map[string]any{"result": res}},
		})
	}
	outcomes := []string{OutcomeSucceeded, OutcomeFailed, OutcomePlanned, OutcomeRolledBack, OutcomeRunning}
	g.defs["error"] = map[string]any{
		"type":                 "object",
		"description":          "what went wrong and how to fix it, as stderr says it",
		"required":             []string{"message", "fix", "code", "exitCode"},
		"additionalProperties": false,
		"properties": map[string]any{
			"message":  map[string]any{"type": "string", "minLength": 1},
			"fix":      map[string]any{"type": "string", "description": "one line saying how to fix it; empty when there is no advice"},
			"code":     map[string]any{"enum": []string{CodeUsage, CodeFailure, CodeInterrupted}, "description": "usage: bad input, exit 2, nothing changed; failure: exit 1; interrupted: stopped by a signal"},
			"exitCode": map[string]any{"type": "integer", "enum": []int{1, 2}},
		},
	}
	s := map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"$id":                  "https://github.com/djdeploy/djdeploy/internal/cli/json-output.schema.json",
		"title":                "djdeploy --json output",
		"description":          "Every djdeploy command given --json prints one document of this shape on stdout, whether it succeeds or fails (the exit code is the same as without --json). Arrays are never null. Generated from the Go types by 'make generate'.",
		"type":                 "object",
		"required":             []string{"schemaVersion", "command", "outcome", "result", "error"},
		"additionalProperties": false,
		"properties": map[string]any{
			"schemaVersion": map[string]any{"const": SchemaVersion},
			"command":       map[string]any{"enum": commands, "description": "the command's path below djdeploy"},
			"outcome": map[string]any{"enum": outcomes,
				"description": "succeeded; failed (error says why); planned (--plan, --dry-run: nothing changed); rolled-back (a swap undone after a failed verification); running (the emulator, ready)"},
			"result": map[string]any{"description": "the command's result (see allOf); null when it failed before it had one"},
			"error":  map[string]any{"anyOf": []any{map[string]any{"type": "null"}, map[string]any{"$ref": "#/$defs/error"}}},
		},
		"allOf": append([]any{
			// Success has a result and no error; failure always says why.
			map[string]any{
				"if":   map[string]any{"properties": map[string]any{"error": map[string]any{"type": "null"}}},
				"then": map[string]any{"properties": map[string]any{"result": map[string]any{"not": map[string]any{"type": "null"}}, "outcome": map[string]any{"not": map[string]any{"enum": []string{OutcomeFailed, OutcomeRolledBack}}}}},
				"else": map[string]any{"properties": map[string]any{"outcome": map[string]any{"enum": []string{OutcomeFailed, OutcomeRolledBack}}}},
			},
		}, byCommand...),
		"$defs": g.defs,
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

type schemaGen struct {
	defs map[string]any
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
	rawType      = reflect.TypeFor[json.RawMessage]()
	badDefChar   = regexp.MustCompile(`[^A-Za-z0-9_.-]`)
)

// schema is t's schema: a $ref for named structs (kept in $defs, which
// also ends recursion), inline otherwise.
func (g *schemaGen) schema(t reflect.Type) any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == durationType:
		return map[string]any{"type": "integer", "description": "nanoseconds"}
	case t == rawType:
		return map[string]any{}
	case t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler):
		return map[string]any{}
	case t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler):
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return map[string]any{"anyOf": []any{map[string]any{"type": "null"}, g.schema(t.Elem())}}
	case reflect.Interface:
		return map[string]any{}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		// Never null: the envelope fills nil slices (nonNil).
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		name := defName(t)
		if name == "" {
			return g.object(t)
		}
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = map[string]any{} // placeholder: recursion ends here
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	}
	return map[string]any{}
}

func defName(t reflect.Type) string {
	if t.Name() == "" {
		return ""
	}
	pkg := t.PkgPath()
	if i := strings.LastIndex(pkg, "/"); i >= 0 {
		pkg = pkg[i+1:]
	}
	return badDefChar.ReplaceAllString(pkg+"."+t.Name(), "_")
}

// object is a struct's schema, with encoding/json's rules: json tags,
// omitempty fields not required, embedded structs' fields promoted (not
// required behind a pointer, which may be nil), no other properties.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	g.fields(t, props, &required, true)
	sort.Strings(required)
	if required == nil {
		required = []string{}
	}
	return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string, req bool) {
	// A struct's own fields first: they hide promoted ones of the same name.
	var embedded []reflect.StructField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			embedded = append(embedded, f)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, ok := props[name]; ok {
			continue
		}
		props[name] = g.schema(f.Type)
		if req && !strings.Contains(","+opts+",", ",omitempty,") && !strings.Contains(","+opts+",", ",omitzero,") {
			*required = append(*required, name)
		}
	}
	for _, f := range embedded {
		et, embReq := f.Type, req
		if et.Kind() == reflect.Pointer {
			et, embReq = et.Elem(), false
		}
		if et.Kind() == reflect.Struct {
			g.fields(et, props, required, embReq)
		}
	}
}
