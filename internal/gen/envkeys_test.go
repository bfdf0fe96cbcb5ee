package gen

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestStepEnvNamesEachVariableOnce guards the steps template's env block:
// Azure Pipelines rejects a mapping that names a key twice ("already
// defined"), and a later empty entry would have blanked SYSTEM_ACCESSTOKEN,
// which AzurePipelinesCredential and the build tag need. The schema check
// reads YAML as nodes, which keep duplicates silently.
func TestStepEnvNamesEachVariableOnce(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	b, ok := files["pipelines/steps/djdeploy.yml"]
	if !ok {
		t.Fatal("no pipelines/steps/djdeploy.yml among the generated files")
	}
	var doc struct {
		Steps []struct {
			Bash string            `yaml:"bash"`
			Env  map[string]string `yaml:"env"`
		} `yaml:"steps"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("pipelines/steps/djdeploy.yml: %v", err)
	}
	found := false
	for _, s := range doc.Steps {
		if !strings.Contains(s.Bash, "djdeploy ci azure-pipelines") {
			continue
		}
		found = true
		if got := s.Env["SYSTEM_ACCESSTOKEN"]; !strings.Contains(got, "$(System.AccessToken)") {
			t.Errorf("SYSTEM_ACCESSTOKEN: %q, want the job's $(System.AccessToken) when azureDevopsToken is not given", got)
		}
	}
	if !found {
		t.Error("no step runs djdeploy ci azure-pipelines")
	}
}
