package gen

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// expansion evaluates a template's compile-time `${{ if }}` insertions and
// `${{ parameters.x }}` values the way Azure Pipelines does when it expands
// the pipeline, for the expressions the templates use: and, or, not, eq, ne,
// containsValue, literals, parameters.x and variables['x'].
type expansion struct {
	params map[string]any
	vars   map[string]string
}

func (e expansion) node(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		v := strings.TrimSpace(n.Value)
		if strings.HasPrefix(v, "${{") && strings.HasSuffix(v, "}}") {
			return e.eval(strings.TrimSpace(v[3 : len(v)-2]))
		}
		return n.Value, nil
	case yaml.SequenceNode:
		out := []any{}
		for _, item := range n.Content {
			if item.Kind == yaml.MappingNode && len(item.Content) == 2 && isInsertion(item.Content[0].Value) {
				ok, err := e.cond(item.Content[0].Value)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
				v, err := e.node(item.Content[1])
				if err != nil {
					return nil, err
				}
				if list, isList := v.([]any); isList {
					out = append(out, list...)
				} else {
					out = append(out, v)
				}
				continue
			}
			v, err := e.node(item)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if isInsertion(k) {
				ok, err := e.cond(k)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
				v, err := e.node(n.Content[i+1])
				if err != nil {
					return nil, err
				}
				for mk, mv := range v.(map[string]any) {
					out[mk] = mv
				}
				continue
			}
			v, err := e.node(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: unexpected node", n.Line)
}

func (e expansion) cond(key string) (bool, error) {
	k := strings.TrimSpace(key)
	expr, ok := strings.CutPrefix(strings.TrimSpace(k[3:len(k)-2]), "if ")
	if !ok {
		return false, fmt.Errorf("unsupported insertion %s", key)
	}
	v, err := e.eval(expr)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%s is not a boolean: %v", expr, v)
	}
	return b, nil
}

// eval parses one expression (no operators but functions, as in the
// templates).
func (e expansion) eval(s string) (any, error) {
	v, rest, err := e.parse(strings.TrimSpace(s))
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(rest) != "" {
		return nil, fmt.Errorf("trailing %q in %q", rest, s)
	}
	return v, nil
}

func (e expansion) parse(s string) (any, string, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "'"):
		end := strings.Index(s[1:], "'")
		if end < 0 {
			return nil, "", fmt.Errorf("unterminated string in %q", s)
		}
		return s[1 : end+1], s[end+2:], nil
	case strings.HasPrefix(s, "true"):
		return true, s[4:], nil
	case strings.HasPrefix(s, "false"):
		return false, s[5:], nil
	case strings.HasPrefix(s, "variables['"):
		end := strings.Index(s, "']")
		return e.vars[s[len("variables['"):end]], s[end+2:], nil
	case strings.HasPrefix(s, "parameters."):
		end := strings.IndexAny(s, " ,)")
		if end < 0 {
			end = len(s)
		}
		name := s[len("parameters."):end]
		v, ok := e.params[name]
		if !ok {
			return nil, "", fmt.Errorf("parameter %s has no value", name)
		}
		return v, s[end:], nil
	}
	open := strings.Index(s, "(")
	if open < 0 {
		return nil, "", fmt.Errorf("cannot parse %q", s)
	}
	fn, rest := s[:open], s[open+1:]
	var args []any
	for {
		rest = strings.TrimSpace(rest)
		if strings.HasPrefix(rest, ")") {
			rest = rest[1:]
			break
		}
		v, r, err := e.parse(rest)
		if err != nil {
			return nil, "", err
		}
		args = append(args, v)
		rest = strings.TrimPrefix(strings.TrimSpace(r), ",")
	}
	str := func(v any) string { return strings.ToLower(fmt.Sprint(v)) }
	switch fn {
	case "and", "or":
		all := fn == "and"
		for _, a := range args {
			if a.(bool) != all {
				return !all, rest, nil
			}
		}
		return all, rest, nil
	case "not":
		return !args[0].(bool), rest, nil
	case "eq":
		return str(args[0]) == str(args[1]), rest, nil
	case "ne":
		return str(args[0]) != str(args[1]), rest, nil
	case "containsValue":
		for _, v := range args[0].([]any) {
			if str(v) == str(args[1]) {
				return true, rest, nil
			}
		}
		return false, rest, nil
	}
	return nil, "", fmt.Errorf("unsupported function %s", fn)
}

type expandedJob struct {
	stage, name, environment string
	deployment               bool
	steps                    []map[string]any
}

// expandStages expands pipelines/stages/djdeploy.yml for one build and
// returns its jobs, in order.
func expandStages(t *testing.T, vars map[string]string) []expandedJob {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "pipelines", "stages", "djdeploy.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	params := map[string]any{}
	var top struct {
		Parameters []struct {
			Name    string `yaml:"name"`
			Default any    `yaml:"default"`
		} `yaml:"parameters"`
		Stages yaml.Node `yaml:"stages"`
	}
	if err := doc.Decode(&top); err != nil {
		t.Fatal(err)
	}
	for _, p := range top.Parameters {
		params[p.Name] = p.Default
	}
	params["environment"] = "production"
	e := expansion{params: params, vars: vars}
	v, err := e.node(&top.Stages)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []expandedJob
	for _, st := range v.([]any) {
		stage := st.(map[string]any)
		for _, j := range stage["jobs"].([]any) {
			job := j.(map[string]any)
			ej := expandedJob{stage: stage["stage"].(string)}
			steps := job["steps"]
			if name, ok := job["deployment"]; ok {
				ej.name, ej.deployment = name.(string), true
				ej.environment, _ = job["environment"].(string)
				steps = job["strategy"].(map[string]any)["runOnce"].(map[string]any)["deploy"].(map[string]any)["steps"]
			} else {
				ej.name = job["job"].(string)
			}
			for _, s := range steps.([]any) {
				ej.steps = append(ej.steps, s.(map[string]any))
			}
			jobs = append(jobs, ej)
		}
	}
	return jobs
}

// djdeployStep is the parameters of the job's steps-template call.
func (j expandedJob) djdeployStep() map[string]any {
	for _, s := range j.steps {
		if s["template"] == "../steps/djdeploy.yml" {
			return s["parameters"].(map[string]any)
		}
	}
	return nil
}

func (j expandedJob) downloads() []string {
	var out []string
	for _, s := range j.steps {
		if s["download"] == "current" {
			out = append(out, fmt.Sprint(s["artifact"]))
		}
	}
	return out
}

// TestStagesReleaseWhatTheyBuilt expands the stages template for a
// pull-request build, a build of the release branch and a build of another
// branch: a pull request gets build + preview and never the release; the
// release is a deployment job on the environment that downloads the build
// stage's published artifact and releases it with artifact:, not a rebuild.
func TestStagesReleaseWhatTheyBuilt(t *testing.T) {
	for _, tc := range []struct {
		name string
		vars map[string]string
		jobs []string
	}{
		{"pull request into main", map[string]string{"Build.Reason": "PullRequest", "Build.SourceBranch": "refs/pull/7/merge"}, []string{"build", "preview"}},
		// A PR build whose source branch is a release branch (a PR from main
		// into another branch) is still not released.
		{"pull request from main", map[string]string{"Build.Reason": "PullRequest", "Build.SourceBranch": "refs/heads/main"}, []string{"build", "preview"}},
		{"push to main", map[string]string{"Build.Reason": "IndividualCI", "Build.SourceBranch": "refs/heads/main"}, []string{"build", "release"}},
		{"manual run of main", map[string]string{"Build.Reason": "Manual", "Build.SourceBranch": "refs/heads/main"}, []string{"build", "release"}},
		{"push to a feature branch", map[string]string{"Build.Reason": "IndividualCI", "Build.SourceBranch": "refs/heads/feature"}, []string{"build"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jobs := expandStages(t, tc.vars)
			var names []string
			byName := map[string]expandedJob{}
			for _, j := range jobs {
				names = append(names, j.name)
				byName[j.name] = j
			}
			if !slices.Equal(names, tc.jobs) {
				t.Fatalf("jobs = %v, want %v", names, tc.jobs)
			}

			build := byName["build"]
			var published string
			for _, s := range build.steps {
				if p, ok := s["publish"]; ok {
					published = fmt.Sprint(s["artifact"])
					if out := build.djdeployStep()["out"]; out != p {
						t.Errorf("build writes %v but publishes %v", out, p)
					}
				}
			}
			if build.djdeployStep()["command"] != "build" || published == "" {
				t.Fatalf("build job: command %v, published %q", build.djdeployStep()["command"], published)
			}

			for _, name := range []string{"release", "preview"} {
				j, ok := byName[name]
				if !ok {
					continue
				}
				p := j.djdeployStep()
				if p["command"] != name {
					t.Errorf("%s job runs command %v", name, p["command"])
				}
				if !slices.Equal(j.downloads(), []string{published}) {
					t.Errorf("%s job downloads %v, want the build's artifact %q", name, j.downloads(), published)
				}
				if p["artifact"] != "$(Pipeline.Workspace)/"+published {
					t.Errorf("%s job releases artifact %v, want $(Pipeline.Workspace)/%s (what the build published)", name, p["artifact"], published)
				}
			}
			if r, ok := byName["release"]; ok && (!r.deployment || r.environment != "production") {
				t.Errorf("release is not a deployment job on the environment: deployment=%v environment=%q", r.deployment, r.environment)
			}
		})
	}
}
