package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestEnvelopeWithoutAzure runs the commands that need no Azure with
// --json, and failures caught before any request, and checks each output
// against the committed schema with an independent validator.
func TestEnvelopeWithoutAzure(t *testing.T) {
	s := compileSchema(t)
	for _, tc := range []struct {
		args    []string
		code    int
		outcome string
		errCode string
	}{
		{[]string{"version", "--json"}, 0, OutcomeSucceeded, ""},
		{[]string{"settings", "--json"}, 0, OutcomeSucceeded, ""},
		// a mistyped flag: the error, as JSON, with its did-you-mean
		{[]string{"deploy", "--json", "--pakage", "x.zip"}, 2, OutcomeFailed, CodeUsage},
		{[]string{"swap", "--json"}, 2, OutcomeFailed, CodeUsage},
		{[]string{"static", "mark-production", "--json"}, 2, OutcomeFailed, CodeUsage},
		{[]string{"release", "--json", "--app", "a", "--resource-group", "g", "--slot", "production"}, 2, OutcomeFailed, CodeUsage},
		{[]string{"preview", "--json", "--app", "a", "--resource-group", "g", "--pr", "abc"}, 2, OutcomeFailed, CodeUsage},
		{[]string{"emulator", "--json", "--workers", "0"}, 2, OutcomeFailed, CodeUsage},
		{[]string{"build", "--json"}, 2, OutcomeFailed, CodeUsage},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(context.Background(), tc.args, IO{In: strings.NewReader(""), Out: &out, Err: &errb}, func(string) string { return "" })
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.code, out.String(), errb.String())
			}
			if err := validateOutput(t, s, out.String()); err != nil {
				t.Fatalf("output does not match the schema: %v\n%s", err, out.String())
			}
			env, err := DecodeEnvelope(out.Bytes(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if env.Outcome != tc.outcome {
				t.Errorf("outcome %q, want %q", env.Outcome, tc.outcome)
			}
			if tc.errCode == "" {
				if env.Error != nil {
					t.Errorf("error %+v on success", env.Error)
				}
				return
			}
			if env.Error == nil || env.Error.Code != tc.errCode || env.Error.ExitCode != tc.code || env.Error.Fix == "" {
				t.Fatalf("error %+v, want code %s with a fix", env.Error, tc.errCode)
			}
			// stderr says the same, for people and CI logs
			if !strings.Contains(errb.String(), env.Error.Message) {
				t.Errorf("stderr does not carry the message %q:\n%s", env.Error.Message, errb.String())
			}
		})
	}
	t.Run("did you mean", func(t *testing.T) {
		var out bytes.Buffer
		Main(context.Background(), []string{"deploy", "--json", "--pakage", "x.zip"}, IO{Out: &out, Err: &bytes.Buffer{}}, func(string) string { return "" })
		env, _ := DecodeEnvelope(out.Bytes(), nil)
		if env == nil || env.Error == nil || !strings.Contains(env.Error.Fix, "--package") {
			t.Fatalf("the fix does not suggest --package: %s", out.String())
		}
	})
	t.Run("groups print no envelope", func(t *testing.T) {
		for _, args := range [][]string{{"--json"}, {"static", "--json"}, {"ci", "--json"}} {
			var out bytes.Buffer
			code := Main(context.Background(), args, IO{Out: &out, Err: &bytes.Buffer{}}, func(string) string { return "" })
			if code != 2 || out.Len() != 0 {
				t.Errorf("%v: exit %d, stdout %q", args, code, out.String())
			}
		}
	})
	t.Run("help prints no envelope", func(t *testing.T) {
		var out bytes.Buffer
		Main(context.Background(), []string{"deploy", "--help", "--json"}, IO{Out: &out, Err: &bytes.Buffer{}}, func(string) string { return "" })
		if strings.Contains(out.String(), "schemaVersion") {
			t.Fatalf("help with --json printed an envelope:\n%s", out.String())
		}
	})
}
