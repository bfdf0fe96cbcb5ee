package gen

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/settings"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the generated files")

func updating() bool { return *update || os.Getenv("UPDATE_GOLDEN") == "1" }

// root is the repository root (tests run in internal/gen).
const root = "../.."

func TestGeneratedFiles(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range files {
		path := filepath.Join(root, rel)
		if updating() {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v: run make generate", rel, err)
			continue
		}
		if string(got) != string(want) {
			t.Errorf("%s is stale (a setting or a template changed): run make generate", rel)
		}
	}
}

func TestGeneratedREADME(t *testing.T) {
	path := filepath.Join(root, "README.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReplaceSection(string(doc), TableBegin, TableEnd, SettingsTable())
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if updating() {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != string(doc) {
		t.Errorf("README.md's settings table is stale: run make generate")
	}
}

// The generated files must carry every declared setting under the right
// name, and action inputs no default that could hide djdeploy.yaml.
func TestGeneratedCoverEverySetting(t *testing.T) {
	type actionFile struct {
		Inputs map[string]struct {
			Description string  `yaml:"description"`
			Default     *string `yaml:"default"`
		} `yaml:"inputs"`
		Outputs map[string]any `yaml:"outputs"`
		Runs    struct {
			Using string `yaml:"using"`
			Image string `yaml:"image"`
		} `yaml:"runs"`
	}
	b, err := render("action.yml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	var a actionFile
	if err := yaml.Unmarshal(b, &a); err != nil {
		t.Fatalf("action.yml is not YAML: %v\n%s", err, b)
	}
	if a.Runs.Using != "docker" || a.Runs.Image != ActionImage() {
		t.Errorf("runs = %+v, want docker / %s", a.Runs, ActionImage())
	}
	for _, o := range []string{"url", "slot-url", "release-id", "static-uploaded", "static-skipped", "purged-paths", "deployment-id", "duration"} {
		if _, ok := a.Outputs[o]; !ok {
			t.Errorf("action.yml has no output %s", o)
		}
	}

	type templateFile struct {
		Parameters []struct {
			Name    string  `yaml:"name"`
			Default *string `yaml:"default"`
		} `yaml:"parameters"`
	}
	sb, err := render("steps.yml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	var st templateFile
	if err := yaml.Unmarshal(sb, &st); err != nil {
		t.Fatalf("steps template is not YAML: %v", err)
	}
	params := map[string]*string{}
	for _, p := range st.Parameters {
		params[p.Name] = p.Default
	}

	for _, s := range settings.All() {
		in, ok := a.Inputs[s.Name]
		switch {
		case ForAction(s) && !ok:
			t.Errorf("setting %s has no action input", s.Name)
		case !ForAction(s) && ok:
			t.Errorf("setting %s is for Azure Pipelines only but is an action input", s.Name)
		case ok:
			if in.Default != nil && actionDefaults[s.Name] == "" {
				t.Errorf("input %s has default %q: it would override djdeploy.yaml", s.Name, *in.Default)
			}
			if !strings.Contains(in.Description, s.EnvName()) {
				t.Errorf("input %s: description does not name %s", s.Name, s.EnvName())
			}
			if s.Default != "" && !strings.Contains(in.Description, "Default: "+s.Default) {
				t.Errorf("input %s: description does not state the default %q", s.Name, s.Default)
			}
			if s.Secret && !strings.Contains(in.Description, "Secret") {
				t.Errorf("input %s is secret but its description does not say so", s.Name)
			}
		}
		def, ok := params[s.CamelName()]
		switch {
		case ForPipelines(s) && !ok:
			t.Errorf("setting %s has no template parameter %s", s.Name, s.CamelName())
		case ok && s.Name != "service-connection" && (def == nil || *def != ""):
			t.Errorf("parameter %s must default to '' so that unset means unset", s.CamelName())
		}
	}
	if _, ok := params["resourceGroup"]; !ok {
		t.Errorf("no resourceGroup parameter (the camelCase of resource-group)")
	}
	if !strings.Contains(string(sb), "DJDEPLOY_RESOURCE_GROUP: ${{ parameters.resourceGroup }}") {
		t.Errorf("resourceGroup is not mapped to DJDEPLOY_RESOURCE_GROUP")
	}
}

func TestReplaceSection(t *testing.T) {
	got, err := ReplaceSection("a\n<!-- B -->\nold\n<!-- E -->\nz\n", "<!-- B -->", "<!-- E -->", "new\n")
	if err != nil || got != "a\n<!-- B -->\nnew\n<!-- E -->\nz\n" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := ReplaceSection("no markers", "<!-- B -->", "<!-- E -->", ""); err == nil {
		t.Error("missing markers accepted")
	}
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// TestActionYAMLExpressionsOnlyInDefaults: GitHub's runner refuses an
// action.yml with ${{ }} anywhere but an input's default (actionlint does
// not check this; act and GitHub both failed to load the action).
func TestActionYAMLExpressionsOnlyInDefaults(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "${{") && !strings.HasPrefix(strings.TrimSpace(line), "default:") {
			t.Errorf("action.yml:%d has an expression outside an input's default: %s", i+1, strings.TrimSpace(line))
		}
	}
	for _, in := range Inputs() {
		if strings.Contains(in.Description, "${{") {
			t.Errorf("input %s: the generator puts an expression in the description", in.Name)
		}
	}
}
