// Package gen generates the CI front ends from the settings declared in
// internal/settings: the whole action.yml, the three Azure Pipelines
// templates, and the README's settings table. Generation is data-driven
// (every declared setting, whoever declared it), and TestGenerated* fails
// when a committed file is stale; `make generate` rewrites them.
package gen

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"

	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/settings"
)

//go:embed templates/*.tmpl
var templates embed.FS

// ServiceConnectionEnv is where the templates put the service connection id
// when no setting named service-connection is declared: the variable the
// AzureCLI@2 task exports and azure.CredentialOptions falls back to.
const ServiceConnectionEnv = "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"

// actionDefaults are the only input defaults action.yml carries. A default
// becomes an INPUT_* variable that outranks djdeploy.yaml, so only settings
// that can never be in the file (secrets, CI-only) may have one here.
var actionDefaults = map[string]string{
	"github-token": "${{ github.token }}",
}

// ForAction reports whether a setting is an action input.
func ForAction(s settings.Setting) bool { return !strings.HasPrefix(s.Name, "azure-devops-") }

// ForPipelines reports whether a setting is a template parameter. The
// service connection is a fixed parameter of every template (it is also
// referenced by a task), so a declared setting of that name is not repeated.
func ForPipelines(s settings.Setting) bool {
	return !strings.HasPrefix(s.Name, "github-") && s.Name != "service-connection"
}

// Input is one generated action input.
type Input struct {
	Name, Description, Default string
}

// Param is one generated template parameter.
type Param struct {
	Name, Env, DisplayName string
}

func describe(s settings.Setting, defaultText string) string {
	d := strings.TrimSpace(s.Description)
	if d != "" && !strings.HasSuffix(d, ".") {
		d += "."
	}
	switch {
	case s.Kind == settings.Bool:
		d += " true or false."
	case len(s.Enum) > 0 && !strings.Contains(d, strings.Join(s.Enum, ", ")):
		d += " One of: " + strings.Join(s.Enum, ", ") + "."
	case s.Kind == settings.List:
		d += " Comma- or newline-separated."
	case s.Kind == settings.Duration:
		d += " A duration such as 90s or 10m."
	}
	if r := s.Range(); r != "" {
		d += " Range: " + r + "."
	}
	if defaultText != "" {
		d += " Default: " + defaultText + "."
	}
	if s.Secret {
		d += " Secret: pass it from your CI's secret store, never in plain text."
	}
	d += " Environment: " + s.EnvName() + "."
	return d
}

// Inputs returns the action inputs, in settings order.
func Inputs() []Input {
	var out []Input
	for _, s := range settings.All() {
		if !ForAction(s) {
			continue
		}
		def := s.Default
		if _, ok := actionDefaults[s.Name]; ok {
			// GitHub's runner allows an expression only in an input's
			// default (actions/runner action_yaml.json); one in the
			// description makes the whole action.yml fail to load. The
			// default is in the input's default: field, where GitHub shows it.
			def = ""
		}
		out = append(out, Input{Name: s.Name, Description: describe(s, def), Default: actionDefaults[s.Name]})
	}
	return out
}

// Params returns the template parameters generated from settings, in
// settings order. Every one defaults to ” (not set), and booleans and
// choices list their values, so that a template passes only what the user
// set and djdeploy.yaml and the declared defaults still apply.
func Params() []Param {
	var out []Param
	for _, s := range settings.All() {
		if !ForPipelines(s) {
			continue
		}
		// No `values:` list even for booleans and choices: Azure Pipelines
		// requires non-empty values there, and '' (not set) must stay
		// possible. djdeploy checks the value and names the parameter's
		// environment variable when it is wrong.
		out = append(out, Param{Name: s.CamelName(), Env: s.EnvName(), DisplayName: describe(s, s.Default)})
	}
	return out
}

// ServiceConnectionEnvName is the environment variable the templates fill
// with the service connection id.
func ServiceConnectionEnvName() string {
	if s, ok := settings.Lookup("service-connection"); ok {
		return s.EnvName()
	}
	return ServiceConnectionEnv
}

var funcs = template.FuncMap{
	// q is a YAML double-quoted scalar (JSON's string syntax is valid YAML).
	"q": func(s string) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		return strings.TrimSpace(b.String())
	},
	// sq is a YAML single-quoted scalar: Azure Pipelines' own style.
	"sq": func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" },
	"without": func(ps []Param, names ...string) []Param {
		var out []Param
	next:
		for _, p := range ps {
			for _, n := range names {
				if p.Name == n {
					continue next
				}
			}
			out = append(out, p)
		}
		return out
	},
}

type data struct {
	Inputs            []Input
	Outputs           []struct{ Name, Description string }
	Params            []Param
	ServiceConnection string
	Image             string
}

func render(name string) ([]byte, error) {
	t, err := template.New(name).Delims("[[", "]]").Funcs(funcs).ParseFS(templates, "templates/"+name)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", name, err)
	}
	var b bytes.Buffer
	d := data{Inputs: Inputs(), Outputs: report.OutputDescriptions, Params: Params(), ServiceConnection: ServiceConnectionEnvName(), Image: ActionImage()}
	if err := t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// Files returns every generated file, by path relative to the repository
// root.
func Files() (map[string][]byte, error) {
	out := map[string][]byte{}
	for path, tmpl := range map[string]string{
		"action.yml":                    "action.yml.tmpl",
		"pipelines/steps/djdeploy.yml":  "steps.yml.tmpl",
		"pipelines/jobs/djdeploy.yml":   "jobs.yml.tmpl",
		"pipelines/stages/djdeploy.yml": "stages.yml.tmpl",
	} {
		b, err := render(tmpl)
		if err != nil {
			return nil, err
		}
		out[path] = b
	}
	return out, nil
}

// Section markers of the README's generated table.
const (
	TableBegin = "<!-- BEGIN settings table (generated) -->"
	TableEnd   = "<!-- END settings table (generated) -->"
)

// SettingsTable is the README's table of every setting.
func SettingsTable() string {
	var b strings.Builder
	b.WriteString("| Setting (flag, file key, action input) | Environment | Pipelines parameter | Default | Description |\n")
	b.WriteString("|---|---|---|---|---|\n")
	group := ""
	for _, s := range settings.All() {
		if s.Group != group {
			group = s.Group
			fmt.Fprintf(&b, "| **%s** | | | | |\n", group)
		}
		name := "`" + s.Name + "`"
		if s.CIOnly {
			name += " (CI only)"
		}
		param := "`" + s.CamelName() + "`"
		if !ForPipelines(s) {
			param = "—"
		}
		if !ForAction(s) {
			name = "`" + s.Name + "` (pipelines only)"
		}
		def := ""
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		desc := s.Description
		if len(s.Enum) > 0 {
			desc += " (" + strings.Join(s.Enum, ", ") + ")"
		}
		if r := s.Range(); r != "" {
			desc += " (" + r + ")"
		}
		if s.Secret {
			desc += " **Secret.**"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s |\n", name, s.EnvName(), param, def, strings.ReplaceAll(desc, "|", `\|`))
	}
	return b.String()
}

// ReplaceSection returns doc with the text between begin and end replaced by
// body. Both markers must be present, in order.
func ReplaceSection(doc, begin, end, body string) (string, error) {
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < 0 || j < i {
		return "", fmt.Errorf("markers %q and %q not found in order", begin, end)
	}
	return doc[:i+len(begin)] + "\n" + body + doc[j:], nil
}
