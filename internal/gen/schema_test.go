package gen

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/testenv"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// schemaPath is Microsoft's Azure Pipelines schema, kept beside the clone
// (../shared from the repository root, as on CI).
var schemaPath = filepath.Join(root, "..", "shared", "schemas", "azure-pipelines", "service-schema.json")

func loadSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaPath)
	if err != nil {
		testenv.Missing(t, "the Azure Pipelines schema "+schemaPath, "check out ../shared beside the repository")
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("reading %s: %v", schemaPath, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("service-schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("service-schema.json")
	if err != nil {
		t.Fatalf("compiling %s: %v", schemaPath, err)
	}
	return s
}

// pipelineDoc loads Azure Pipelines YAML the way its own parser sees it
// before the schema applies:
//   - every scalar is a string, except in a task's inputs, whose schema is
//     typed from the task's task.json (addSpnToEnvironment is a boolean);
//   - `${{ if }}` / `${{ each }}` insertions are expanded: each branch's
//     content is spliced in, as if its condition held;
//   - a scalar that is exactly `${{ parameters.x }}` becomes x's default, as
//     compile-time expansion would make it (job and step names must match
//     a pattern the expression itself does not).
func pipelineDoc(data []byte) (any, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, err
	}
	if len(n.Content) == 0 {
		return "", nil
	}
	c := converter{defaults: map[string]*yaml.Node{}}
	top := n.Content[0]
	if top.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(top.Content); i += 2 {
			if top.Content[i].Value != "parameters" || top.Content[i+1].Kind != yaml.SequenceNode {
				continue
			}
			for _, p := range top.Content[i+1].Content {
				var name string
				var def *yaml.Node
				for j := 0; j+1 < len(p.Content); j += 2 {
					switch p.Content[j].Value {
					case "name":
						name = p.Content[j+1].Value
					case "default":
						def = p.Content[j+1]
					}
				}
				if name != "" && def != nil && !(def.Kind == yaml.ScalarNode && def.Value == "") {
					c.defaults[name] = def
				}
			}
		}
	}
	return c.convert(top, false)
}

type converter struct {
	defaults map[string]*yaml.Node
	inParams bool
}

func isInsertion(key string) bool {
	k := strings.TrimSpace(key)
	return strings.HasPrefix(k, "${{") && strings.HasSuffix(k, "}}")
}

func (c converter) convert(n *yaml.Node, typed bool) (any, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return c.convert(n.Alias, typed)
	case yaml.ScalarNode:
		v := strings.TrimSpace(n.Value)
		if name, ok := strings.CutPrefix(v, "${{ parameters."); ok && strings.HasSuffix(name, " }}") && !c.inParams {
			if def, ok := c.defaults[strings.TrimSuffix(name, " }}")]; ok {
				return c.convert(def, typed)
			}
		}
		if typed && n.Tag == "!!bool" {
			return strings.EqualFold(n.Value, "true"), nil
		}
		return n.Value, nil
	case yaml.SequenceNode:
		out := []any{}
		for _, item := range n.Content {
			// - ${{ if cond }}: <item or list>  splices its content.
			if item.Kind == yaml.MappingNode && len(item.Content) == 2 && isInsertion(item.Content[0].Value) {
				v, err := c.convert(item.Content[1], typed)
				if err != nil {
					return nil, err
				}
				if list, ok := v.([]any); ok {
					out = append(out, list...)
				} else {
					out = append(out, v)
				}
				continue
			}
			v, err := c.convert(item, typed)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, vn := n.Content[i].Value, n.Content[i+1]
			cc := c
			if k == "parameters" {
				// Parameter declarations and the values passed to a
				// template are kept as written.
				cc.inParams = true
			}
			v, err := cc.convert(vn, typed || k == "inputs")
			if err != nil {
				return nil, err
			}
			if isInsertion(k) {
				m, ok := v.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("line %d: insertion %s in a mapping must hold a mapping", n.Content[i].Line, k)
				}
				for mk, mv := range m {
					out[mk] = mv
				}
				continue
			}
			out[k] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}

func validate(s *jsonschema.Schema, data []byte) error {
	doc, err := pipelineDoc(data)
	if err != nil {
		return err
	}
	// Round-trip through JSON so the validator sees plain JSON values.
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

func pipelineFiles(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(root, "pipelines", "*", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "examples", "azure-pipelines.yml"))
	if len(files) < 4 {
		t.Fatalf("expected the three templates and the example, found %v", files)
	}
	return files
}

func TestPipelinesMatchSchema(t *testing.T) {
	s := loadSchema(t)
	for _, f := range pipelineFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(s, data); err != nil {
			t.Errorf("%s does not match the Azure Pipelines schema:\n%v", f, err)
		}
	}
}

// The schema test must be able to fail: a misspelt key, a boolean where a
// step is expected, and a template parameter with an unknown field.
func TestPipelinesSchemaRejects(t *testing.T) {
	s := loadSchema(t)
	for name, doc := range map[string]string{
		"misspelt step key": "steps:\n- bash: echo hi\n  displayNam: x\n",
		"unknown step":      "steps:\n- bashh: echo hi\n",
		"bad parameter":     "parameters:\n- name: a\n  typ: string\nsteps:\n- bash: echo\n",
		"job without steps": "jobs:\n- job: a\n  poool: x\n",
	} {
		err := validate(s, []byte(doc))
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: accepted (err %v):\n%s", name, err, doc)
		}
	}
}

func TestInsertionsAreExpanded(t *testing.T) {
	doc, err := pipelineDoc([]byte("steps:\n- ${{ if eq(1, 1) }}:\n  - bash: a\n  - bash: b\n- bash: c\n  env:\n    ${{ if true }}:\n      X: 1\n    Y: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(doc)
	want := `{"steps":[{"bash":"a"},{"bash":"b"},{"bash":"c","env":{"X":"1","Y":"true"}}]}`
	if string(got) != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// The jobs and stages templates hand their parameters to the steps template:
// each one they pass must be declared there, and each one it requires must
// be passed (Azure Pipelines rejects both at compile time).
func TestTemplatesPassDeclaredParameters(t *testing.T) {
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var steps struct {
		Parameters []map[string]any `yaml:"parameters"`
	}
	if err := yaml.Unmarshal(read("pipelines/steps/djdeploy.yml"), &steps); err != nil {
		t.Fatal(err)
	}
	declared, required := map[string]bool{}, map[string]bool{}
	for _, p := range steps.Parameters {
		name, _ := p["name"].(string)
		declared[name] = true
		if _, ok := p["default"]; !ok {
			required[name] = true
		}
	}
	for _, rel := range []string{"pipelines/jobs/djdeploy.yml", "pipelines/stages/djdeploy.yml"} {
		doc, err := pipelineDoc(read(rel))
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				if v["template"] == "../steps/djdeploy.yml" {
					calls++
					passed, _ := v["parameters"].(map[string]any)
					for k := range passed {
						if !declared[k] {
							t.Errorf("%s passes %s, which the steps template does not declare", rel, k)
						}
					}
					for k := range required {
						if _, ok := passed[k]; !ok {
							t.Errorf("%s does not pass %s, which the steps template requires", rel, k)
						}
					}
				}
				for _, c := range v {
					walk(c)
				}
			case []any:
				for _, c := range v {
					walk(c)
				}
			}
		}
		walk(doc)
		if calls == 0 {
			t.Errorf("%s never uses the steps template", rel)
		}
	}
}
