package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/spf13/cobra"
)

// schemaPath is the documented schema of --json, generated from the result
// types (make generate).
var schemaPath = "json-output.schema.json"

// TestGoldenSchema keeps internal/cli/json-output.schema.json what the code prints.
func TestGoldenSchema(t *testing.T) {
	got, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(schemaPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatalf("no schema %s: run make generate", schemaPath)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("%s is out of date with the result types: run make generate and review the diff", schemaPath)
	}
}

// compileSchema compiles the committed schema with a validator written by
// others (santhosh-tekuri/jsonschema, draft 2020-12).
func compileSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("output.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("output.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return s
}

// validateOutput checks one --json document against the schema.
func validateOutput(t testing.TB, s *jsonschema.Schema, stdout string) error {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(stdout))
	if err != nil {
		return err
	}
	if err := s.Validate(doc); err != nil {
		// %#v lists every failing keyword with its place in the document.
		return fmt.Errorf("%#v", err)
	}
	return nil
}

// TestSchemaRejects proves the schema is strict where it matters: a null
// where an array belongs, a failure without an error, an unknown command.
func TestSchemaRejects(t *testing.T) {
	s := compileSchema(t)
	var buf bytes.Buffer
	env := &Env{IO: IO{Out: &buf}}
	env.json.result, env.json.resultSet = &report.Release{Outcome: report.Succeeded}, true
	if err := env.printEnvelope("release", nil); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	if err := validateOutput(t, s, good); err != nil {
		t.Fatalf("the envelope of an empty release report is not valid: %v\n%s", err, good)
	}
	if !strings.Contains(good, `"steps": []`) {
		t.Fatalf("a nil slice was not printed as []:\n%s", good)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(good), &doc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(d map[string]any)
	}{
		{"null array", func(d map[string]any) { d["result"].(map[string]any)["steps"] = nil }},
		{"failed without error", func(d map[string]any) { d["outcome"] = "failed" }},
		{"unknown command", func(d map[string]any) { d["command"] = "deploy-everything" }},
		{"field of another command", func(d map[string]any) { d["result"].(map[string]any)["checks_total"] = 3 }},
		{"succeeded without result", func(d map[string]any) { d["result"] = nil }},
		{"error without fix field", func(d map[string]any) {
			d["outcome"] = "failed"
			d["error"] = map[string]any{"message": "boom", "code": "failure", "exitCode": 1}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d map[string]any
			_ = json.Unmarshal([]byte(good), &d)
			tc.edit(d)
			b, _ := json.Marshal(d)
			if err := validateOutput(t, s, string(b)); err == nil {
				t.Fatalf("the schema accepted %s", b)
			}
		})
	}
}

// decodeResult reads the result of the --json envelope on stdout into v.
func decodeResult(stdout string, v any) error {
	_, err := DecodeEnvelope([]byte(stdout), v)
	return err
}

// TestEveryCommandDeclaresItsResult: a command that runs takes --json, and
// its result type is declared (describeResult), so the schema knows it. A
// new command without one fails here, not in a user's script.
func TestEveryCommandDeclaresItsResult(t *testing.T) {
	root := NewRoot(&Env{IO: IO{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, Getenv: func(string) string { return "" }})
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Runnable() && c.Name() != "help" && c.Name() != "completion" {
			n++
			name := commandName(c)
			if c.Flags().Lookup("json") == nil {
				t.Errorf("%s has no --json", name)
			}
			if len(resultTypes[name]) == 0 {
				t.Errorf("%s declares no result type: call describeResult(%q, itsResult{}) in its init", name, name)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 12 {
		t.Fatalf("walked only %d commands", n)
	}
	for name := range resultTypes {
		if c, _, err := root.Find(strings.Fields(name)); err != nil || commandName(c) != name {
			t.Errorf("result declared for %q, which is not a command", name)
		}
	}
}
