package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// A copy of shared/contracts/examples (Microsoft's MIT-licensed spec examples,
// provenance in its README), so the test also runs where shared/ is absent
// (this repo's GitHub workflow).
const examplesDir = "testdata/contracts"

// shapeDiff lists where got lacks a field of want or has another JSON type,
// recursively. A null in want matches anything (the example leaves the
// type open); arrays compare their first elements.
func shapeDiff(path string, want, got any) []string {
	if want == nil {
		return nil
	}
	if jsonKind(want) != jsonKind(got) {
		return []string{fmt.Sprintf("%s: example has %s, emulator has %s", path, jsonKind(want), jsonKind(got))}
	}
	var diffs []string
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			diffs = append(diffs, shapeDiff(path+"."+k, w[k], gv)...)
		}
	case []any:
		g := got.([]any)
		if len(w) > 0 && len(g) > 0 {
			diffs = append(diffs, shapeDiff(path+"[0]", w[0], g[0])...)
		}
	}
	return diffs
}

func TestShapeDiffCatchesDifferences(t *testing.T) {
	tests := []struct {
		name      string
		want, got string
		diffs     int
	}{
		{"same", `{"a":1,"b":{"c":"x"}}`, `{"a":2,"b":{"c":"y"},"extra":true}`, 0},
		{"missing field", `{"a":1,"b":2}`, `{"a":1}`, 1},
		{"wrong type", `{"a":1}`, `{"a":"1"}`, 1},
		{"nested missing", `{"p":{"q":{"r":true}}}`, `{"p":{"q":{}}}`, 1},
		{"array element", `{"l":[{"x":1}]}`, `{"l":[{"y":1}]}`, 1},
		{"null is open", `{"a":null}`, `{"a":"s"}`, 0},
		{"null is still required", `{"a":null}`, `{}`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w, g any
			json.Unmarshal([]byte(tt.want), &w)
			json.Unmarshal([]byte(tt.got), &g)
			if d := shapeDiff("$", w, g); len(d) != tt.diffs {
				t.Errorf("shapeDiff = %v, want %d differences", d, tt.diffs)
			}
		})
	}
}

// TestContractShapes compares the emulator's responses with Microsoft's
// examples: every field of the example's response exists in the emulator's
// with the same JSON type, and the status code is one the example lists.
func TestContractShapes(t *testing.T) {
	if _, err := os.Stat(examplesDir); err != nil {
		t.Fatalf("Microsoft's examples are missing at %s (copy them from shared/contracts/examples): %v", examplesDir, err)
	}
	e, err := Start(context.Background(), Config{Log: testLog{}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// A deployment to have a deploymentStatus to read: a package with no
	// Django project fails at runtime start, without needing Python.
	for _, slot := range []string{"production", "staging"} {
		id := deployZip(t, e, "demo-app", slot, zipFiles(t, map[string]string{"hello.txt": "hi"}))
		st, body := waitDeployment(t, e, "demo-app", slot, id)
		if st != kuduFailed {
			t.Fatalf("deployment status %d, want 3: %s", st, body)
		}
		if slot == "production" {
			prodDeployment = id
		} else {
			stagingDeployment = id
		}
	}
	site := e.ARMEndpoint() + "/subscriptions/" + e.Subscription() + "/resourceGroups/demo-rg/providers/Microsoft.Web/sites/demo-app"
	cdn := e.ARMEndpoint() + "/subscriptions/" + e.Subscription() + "/resourceGroups/demo-rg/providers/Microsoft.Cdn/profiles/"
	cases := []struct {
		file, method, url string
		body              func(ex map[string]any) []byte
	}{
		{"web/GetWebApp.json", "GET", site, nil},
		{"web/GetWebAppSlot.json", "GET", site + "/slots/staging", nil},
		{"web/GetSiteConfig.json", "GET", site + "/config/web", nil},
		// first, so that the list holds the example's settings
		{"web/UpdateAppSettings.json", "PUT", site + "/config/appsettings", func(ex map[string]any) []byte { return mustJSON(ex["parameters"].(map[string]any)["appSettings"]) }},
		{"web/ListAppSettings.json", "POST", site + "/config/appsettings/list", nil},
		{"web/GetPublishingCredentialsPolicy.json", "GET", site + "/basicPublishingCredentialsPolicies/ftp", nil},
		{"web/GetAppServicePlan.json", "GET", strings.Replace(site, "sites/demo-app", "serverfarms/demo-plan", 1), nil},
		{"web/GetSiteDeploymentStatus.json", "GET", site + "/deploymentStatus/{prod}", nil},
		{"web/GetSiteDeploymentStatusSlot.json", "GET", site + "/slots/staging/deploymentStatus/{staging}", nil},
		{"web/ApplySlotConfig.json", "POST", site + "/applySlotConfig", func(ex map[string]any) []byte { return mustJSON(ex["parameters"].(map[string]any)["slotSwapEntity"]) }},
		{"cdn/Profiles_Get.json", "GET", cdn + "demo-fd", nil},
		{"cdn/Endpoints_Get.json", "GET", cdn + "demo-cdn/endpoints/demo-cdn-ep", nil},
		{"cdn/AFDEndpoints_Get.json", "GET", cdn + "demo-fd/afdEndpoints/demo-fd-ep", nil},
		{"cdn/Endpoints_PurgeContent.json", "POST", cdn + "demo-cdn/endpoints/demo-cdn-ep/purge", func(ex map[string]any) []byte { return mustJSON(ex["parameters"].(map[string]any)["contentFilePaths"]) }},
		{"cdn/AFDEndpoints_PurgeContent.json", "POST", cdn + "demo-fd/afdEndpoints/demo-fd-ep/purge", func(ex map[string]any) []byte {
			c := ex["parameters"].(map[string]any)["contents"].(map[string]any)
			c["domains"] = []any{strings.TrimPrefix(e.CDNURL("demo-fd", "demo-fd-ep"), "http://")}
			return mustJSON(c)
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(examplesDir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			var ex map[string]any
			if err := json.Unmarshal(raw, &ex); err != nil {
				t.Fatal(err)
			}
			var body []byte
			if c.body != nil {
				body = c.body(ex)
			}
			u := strings.NewReplacer("{prod}", prodDeployment, "{staging}", stagingDeployment).Replace(c.url)
			resp := do(t, c.method, u+"?api-version=2024-04-01", e.Token(), body, "Content-Type", "application/json")
			text := readAll(t, resp)
			responses := ex["responses"].(map[string]any)
			exResp, ok := responses[fmt.Sprint(resp.StatusCode)].(map[string]any)
			if !ok {
				t.Fatalf("status %d is not one of the example's %v: %s", resp.StatusCode, sortedKeys(responses), text)
			}
			if h, ok := exResp["headers"].(map[string]any); ok {
				for k := range h {
					if resp.Header.Get(k) == "" {
						t.Errorf("header %s missing (the example's %d response has it)", k, resp.StatusCode)
					}
				}
			}
			want, ok := exResp["body"]
			if !ok {
				return
			}
			var got any
			if err := json.Unmarshal([]byte(text), &got); err != nil {
				t.Fatalf("response is not JSON: %v: %s", err, text)
			}
			for _, d := range shapeDiff("$", want, got) {
				t.Error(d)
			}
		})
	}
}

var prodDeployment, stagingDeployment string

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// zipFiles builds a zip from name -> content.
func zipFiles(t *testing.T, files map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return zipDir(t, dir)
}
