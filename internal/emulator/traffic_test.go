package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ownEmulator is a fresh emulator for tests that change production's routing.
func ownEmulator(t *testing.T) *Emulator {
	t.Helper()
	e, err := Start(context.Background(), Config{Workers: 1, Log: testLog{}})
	if err != nil {
		t.Fatalf("starting emulator: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func setRampUp(t *testing.T, e *Emulator, rules string) {
	t.Helper()
	u := e.ARMEndpoint() + e.siteIDFor("demo-app") + "/config/web?api-version=2023-12-01"
	resp := do(t, "PATCH", u, e.Token(), []byte(`{"properties":{"experiments":{"rampUpRules":`+rules+`}}}`), "Content-Type", "application/json")
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH config/web: %d %s", resp.StatusCode, body)
	}
}

func (e *Emulator) siteIDFor(app string) string { return e.siteID(e.findSite(app)) }

// servedBy sends one request to production's host, as a new client (no
// cookie) unless cookie is set, and says which slot served it and which
// routing cookie came back.
func servedBy(t *testing.T, e *Emulator, path, cookie string) (slot, setCookie string) {
	t.Helper()
	before := len(e.telemetryLog().snapshot())
	req, _ := http.NewRequest("GET", e.ProductionURL("demo-app")+path, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: routingCookie, Value: cookie})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	for _, c := range resp.Cookies() {
		if c.Name == routingCookie {
			setCookie = c.Value
		}
	}
	recs := e.telemetryLog().snapshot()
	if len(recs) != before+1 {
		t.Fatalf("telemetry grew by %d records for one request", len(recs)-before)
	}
	return recs[len(recs)-1].Slot, setCookie
}

func TestRampUpRulesRouteAShareAndPin(t *testing.T) {
	e := ownEmulator(t)
	staging := e.findSlot("demo-app", "staging")

	// No rule: everything stays on production, and no cookie is set.
	if slot, c := servedBy(t, e, "/", ""); slot != "production" || c != "" {
		t.Fatalf("no rules: served by %q, cookie %q", slot, c)
	}

	setRampUp(t, e, fmt.Sprintf(`[{"actionHostName":%q,"reroutePercentage":30,"name":"staging"}]`, staging.host))
	const n = 1000
	counts := map[string]int{}
	for range n {
		slot, c := servedBy(t, e, "/", "")
		want := slot
		if slot == "production" {
			want = "self"
		}
		if c != want {
			t.Fatalf("served by %s but the routing cookie says %q", slot, c)
		}
		counts[slot]++
	}
	// 30% of 1000: a binomial with sd ~14.5; 6 sd either side.
	if got := counts["staging"]; got < 213 || got > 387 {
		t.Fatalf("staging served %d of %d requests with a 30%% rule", got, n)
	}

	// A pinned client stays; the query parameter chooses and pins.
	for range 20 {
		if slot, _ := servedBy(t, e, "/", "staging"); slot != "staging" {
			t.Fatalf("client pinned to staging was served by %s", slot)
		}
		if slot, _ := servedBy(t, e, "/", "self"); slot != "production" {
			t.Fatalf("client pinned to self was served by %s", slot)
		}
	}
	if slot, c := servedBy(t, e, "/?x-ms-routing-name=staging", "self"); slot != "staging" || c != "staging" {
		t.Fatalf("?x-ms-routing-name=staging: served by %s, cookie %q", slot, c)
	}

	// The Azure host name works as actionHostName too; 100% sends everything.
	setRampUp(t, e, `[{"actionHostName":"demo-app-staging.azurewebsites.net","reroutePercentage":100}]`)
	for range 20 {
		if slot, _ := servedBy(t, e, "/", ""); slot != "staging" {
			t.Fatalf("100%% rule: served by %s", slot)
		}
	}
	// Removing the rules sends new clients back to production.
	setRampUp(t, e, `[]`)
	for range 20 {
		if slot, _ := servedBy(t, e, "/", ""); slot != "production" {
			t.Fatalf("rules removed: served by %s", slot)
		}
	}
}

func TestAppInsightsQueryAndAnnotations(t *testing.T) {
	e := ownEmulator(t)
	e.SetUnhealthy("demo-app", "staging", true) // staging answers 503
	for range 7 {
		servedBy(t, e, "/?x-ms-routing-name=staging", "")
	}
	for range 5 {
		servedBy(t, e, "/", "")
	}
	// The slot's own host counts as the slot's traffic too.
	if code, _ := getText(t, e.SlotURL("demo-app", "staging")+"/x"); code != http.StatusServiceUnavailable {
		t.Fatalf("unhealthy staging answered %d", code)
	}

	comp := readJSON(t, do(t, "GET", e.ARMEndpoint()+e.AppInsightsID("demo-app")+"?api-version=2020-02-02", e.Token(), nil))
	props := comp["properties"].(map[string]any)
	appID, _ := props["AppId"].(string)
	if appID == "" || !strings.Contains(props["ConnectionString"].(string), "ApplicationId="+appID) {
		t.Fatalf("component: %v", props)
	}

	query := func(tok, q string) (int, map[string]any) {
		b, _ := json.Marshal(map[string]string{"query": q, "timespan": "PT10M"})
		resp := do(t, "POST", e.ARMEndpoint()+"/v1/apps/"+appID+"/query", tok, b, "Content-Type", "application/json")
		return resp.StatusCode, readJSON(t, resp)
	}
	aiTok, err := e.TokenFor(AppInsightsAudience)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Now().UTC().Add(-5 * time.Minute).Format(time.RFC3339)
	code, res := query(aiTok, `requests
| where timestamp >= datetime(`+from+`) and cloud_RoleName == "demo-app-staging"
| summarize total = count(), failed = countif(success == false), p95 = percentile(duration, 95)`)
	if code != http.StatusOK {
		t.Fatalf("query: %d %v", code, res)
	}
	row := res["tables"].([]any)[0].(map[string]any)["rows"].([]any)[0].([]any)
	if row[0].(float64) != 8 || row[1].(float64) != 8 || row[2] == nil {
		t.Fatalf("staging's requests: total, failed, p95 = %v (want 8, 8, a number)", row)
	}
	_, res = query(aiTok, `requests | where cloud_RoleName == 'demo-app' | summarize count(), countif(resultCode != "200")`)
	row = res["tables"].([]any)[0].(map[string]any)["rows"].([]any)[0].([]any)
	if row[0].(float64) != 5 || row[1].(float64) != 0 {
		t.Fatalf("production's requests: %v (want 5, 0)", row)
	}

	// ARM's token is not the query API's; nor is no token; nor an operator
	// the engine does not know (a 400 that says so, not a wrong answer).
	if code, _ := query(e.Token(), "requests"); code != http.StatusUnauthorized {
		t.Fatalf("ARM token on the query API: %d", code)
	}
	if code, _ := query("", "requests"); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, res := query(aiTok, "requests | extend x = 1"); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(res), "extend") {
		t.Fatalf("unsupported operator: %d %v", code, res)
	}

	// Annotations: PUT creates, GET lists by time range.
	ann := `{"AnnotationName":"release r1","Category":"Deployment","EventTime":"` + time.Now().UTC().Format(time.RFC3339) + `","Properties":"{\"ReleaseId\":\"r1\"}"}`
	resp := do(t, "PUT", e.ARMEndpoint()+e.AppInsightsID("demo-app")+"/Annotations?api-version=2015-05-01", e.Token(), []byte(ann), "Content-Type", "application/json")
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"Id"`) {
		t.Fatalf("PUT annotation: %d %s", resp.StatusCode, body)
	}
	start, end := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
	list := readJSON(t, do(t, "GET", e.ARMEndpoint()+e.AppInsightsID("demo-app")+"/Annotations?api-version=2015-05-01&start="+start+"&end="+end, e.Token(), nil))
	if v := list["value"].([]any); len(v) != 1 || v[0].(map[string]any)["AnnotationName"] != "release r1" {
		t.Fatalf("annotations: %v", list)
	}
	if got := e.Annotations("demo-app"); len(got) != 1 || got[0]["properties"].(map[string]any)["ReleaseId"] != "r1" {
		t.Fatalf("Annotations(): %v", got)
	}
}

func readJSON(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	var m map[string]any
	body := readAll(t, resp)
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%d: not JSON: %s", resp.StatusCode, body)
	}
	return m
}
