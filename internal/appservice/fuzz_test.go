package appservice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// Status bodies as Azure sends them: ARM's deploymentStatus (Microsoft's
// GetSiteDeploymentStatus example) and Kudu's DeployResult
// (contracts README §1.4), plus near misses.
var (
	armStatusSeeds = []string{
		`{"id":"/subscriptions/34adfa4f-cedf-4dc0-ba29-b6d1a69ab345/resourceGroups/rg/providers/Microsoft.Web/sites/testSite/deploymentStatus/eacfd68b-3bbd-4ad9-99c5-98614d89c8e5","name":"eacfd68b-3bbd-4ad9-99c5-98614d89c8e5","type":"Microsoft.Web/sites/deploymentStatus","properties":{"deploymentId":"eacfd68b-3bbd-4ad9-99c5-98614d89c8e5","status":"RuntimeSuccessful","numberOfInstancesInProgress":0,"numberOfInstancesSuccessful":1,"numberOfInstancesFailed":0,"failedInstancesLogs":[],"errors":null}}`,
		`{"name":"eacfd68b","type":"Microsoft.Web/sites/deploymentStatus","properties":{"deploymentId":"eacfd68b","status":"RuntimeStarting","numberOfInstancesInProgress":1,"numberOfInstancesSuccessful":0,"numberOfInstancesFailed":0,"failedInstancesLogs":[],"errors":null}}`,
		`{"properties":{"status":"RuntimeStarting","numberOfInstancesInProgress":0,"numberOfInstancesSuccessful":0,"numberOfInstancesFailed":0}}`,
		`{"properties":{"status":"BuildFailed","errors":[{"code":"BuildFailed","message":"pip install failed"},{"message":""}],"failedInstancesLogs":[]}}`,
		`{"properties":{"status":"RuntimeFailed","numberOfInstancesFailed":1,"failedInstancesLogs":["https://app.scm.azurewebsites.net/api/vfs/LogFiles/x.log"]}}`,
		`{"properties":{"status":"TimedOut"}}`,
		`{"properties":{"status":"BuildInProgress"}}`,
		`{"properties":{"status":"RuntimeFailed","numberOfInstancesFailed":"1"}}`,
		`{"properties":{"Status":"RuntimeSuccessful"}}`,
		`{"properties":{}}`,
		`not json`,
		``,
	}
	kuduStatusSeeds = []string{
		`{"id":"2c5a","status":4,"status_text":"","author":"N/A","deployer":"ZipDeploy","message":"Created via a push deployment","progress":"","received_time":"2024-05-01T10:00:00Z","start_time":"2024-05-01T10:00:01Z","end_time":"2024-05-01T10:00:30Z","complete":true,"active":true,"is_temp":false,"is_readonly":true,"site_name":"app","url":"https://app.scm.azurewebsites.net/api/deployments/2c5a","log_url":"https://app.scm.azurewebsites.net/api/deployments/2c5a/log"}`,
		`{"id":"2c5a","status":1,"status_text":"Building","complete":false,"progress":"Running oryx build..."}`,
		`{"id":"2c5a","status":3,"status_text":"Oryx build failed","complete":true}`,
		`{"id":"2c5a","status":5,"complete":true}`,
		`{"id":"2c5a","status":4,"complete":false}`,
		// Found by FuzzKuduStatus: a 200 whose body did not decode was a
		// success, even when it said Failed (3) or Building (1).
		`{"status":3,"complete":"true"}`,
		`{"status":1,"complete":"yes","provisioningState":null}`,
		`{"status":-1,"complete":true}`,
		`null`,
		`[]`,
		`<html>Service Unavailable</html>`,
		``,
	}
)

// scripted answers the first `repeat` requests with one response, then
// with `done`, so a poll that does not stop on the fuzzed answer ends on
// the next ones; calls counts the requests.
type scripted struct {
	code   int
	body   []byte
	repeat int
	done   string
	calls  int
}

func (s *scripted) Do(req *http.Request) (*http.Response, error) {
	s.calls++
	code, body := s.code, s.body
	if s.calls > s.repeat {
		code, body = http.StatusOK, []byte(s.done)
	}
	return &http.Response{StatusCode: code, Status: http.StatusText(code), Request: req, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(body))}, nil
}

func fuzzClient(t *testing.T, tr *scripted) *Client {
	t.Helper()
	opts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{Transport: tr, Retry: policy.RetryOptions{MaxRetries: -1}}}
	c, err := New("00000000-0000-0000-0000-000000000001", azure.StaticToken("fuzz-token"), opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.PollInterval, c.MaxPollInterval = time.Nanosecond, time.Nanosecond
	return c
}

var statusCodes = []int{http.StatusOK, http.StatusAccepted, http.StatusNotFound, http.StatusConflict, http.StatusInternalServerError}

// FuzzKuduStatus feeds any answer to the Kudu deployment status poll
// (GET /api/deployments/{id}). It must never panic, and never call a
// deployment done that Kudu says failed (status 3) or still runs (0, 1,
// 2): that would swap a broken or half-deployed slot into production.
// A finished deployment (complete, status 4 or 5) is a success at once;
// anything else it cannot read is an error or another poll, never success.
func FuzzKuduStatus(f *testing.F) {
	for _, b := range kuduStatusSeeds {
		f.Add(uint8(0), []byte(b))
		f.Add(uint8(1), []byte(b))
	}
	f.Fuzz(func(t *testing.T, codeIdx uint8, body []byte) {
		tr := &scripted{code: statusCodes[int(codeIdx)%len(statusCodes)], body: body, repeat: 3, done: `{"status":4,"complete":true}`}
		c := fuzzClient(t, tr)
		pl, err := c.kuduPipeline("https://app.scm.azurewebsites.net")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res := &DeployResult{}
		err = c.pollKudu(ctx, pl, "https://app.scm.azurewebsites.net", "", "2c5a", res)
		firstAnswer := tr.calls == 1
		okCode := tr.code == http.StatusOK || tr.code == http.StatusAccepted

		var kr kuduResult
		typed := len(body) > 0 && json.Unmarshal(body, &kr) == nil
		status, says := kuduSays(body)

		if err != nil {
			if p, ok := problem.As(err); !ok || p.Usage || p.What == "" {
				t.Fatalf("error is not a failure with a message: %#v", err)
			}
			if !firstAnswer {
				t.Fatalf("error after the fuzzed answers were replaced by success: %v", err)
			}
		}
		if okCode && says && status == "3" {
			if err == nil || !firstAnswer {
				t.Fatalf("Kudu said Failed (%q), poll returned %v after %d calls", body, err, tr.calls)
			}
			var de *DeployError
			if typed && (!errors.As(err, &de) || de.Status != "Failed") {
				t.Fatalf("Kudu said Failed (%q), poll returned %v, not the deployment's failure", body, err)
			}
		}
		if okCode && says && (status == "0" || status == "1" || status == "2") && err == nil && firstAnswer {
			t.Fatalf("Kudu said still running (%q), poll reported %q", body, res.Status)
		}
		if err == nil && firstAnswer {
			if res.Status != "Success" {
				t.Fatalf("poll ended on %q with status %q", body, res.Status)
			}
			empty := len(bytes.TrimSpace(body)) == 0
			if !(typed && kr.Complete && (kr.Status == 4 || kr.Status == 5)) && !(tr.code == http.StatusOK && empty) {
				t.Fatalf("poll called %q (HTTP %d) a success", body, tr.code)
			}
		}
		if okCode && typed && kr.Complete && (kr.Status == 4 || kr.Status == 5) && (err != nil || !firstAnswer) {
			t.Fatalf("Kudu said complete (%q), poll returned %v after %d calls", body, err, tr.calls)
		}
	})
}

// kuduSays returns the raw "status" of a JSON object when exactly one key
// names it (Go's decoder also takes "Status" or "STATUS").
func kuduSays(body []byte) (string, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return "", false
	}
	n, v := 0, ""
	for k, raw := range m {
		if strings.EqualFold(k, "status") {
			n++
			v = strings.TrimSpace(string(raw))
		}
	}
	return v, n == 1
}

// FuzzARMDeploymentStatus feeds any answer to ARM's deploymentStatus poll.
// It must never panic; a failure status is always a DeployError with that
// status, never success; success comes only from RuntimeSuccessful or from
// RuntimeStarting with no instance for three polls (azd's "app stopped"
// rule); an answer it cannot read makes the caller fall back to Kudu.
func FuzzARMDeploymentStatus(f *testing.F) {
	for _, b := range armStatusSeeds {
		f.Add(uint8(0), []byte(b))
		f.Add(uint8(1), []byte(b))
	}
	f.Fuzz(func(t *testing.T, codeIdx uint8, body []byte) {
		tr := &scripted{code: statusCodes[int(codeIdx)%len(statusCodes)], body: body, repeat: 3, done: `{"properties":{"status":"RuntimeSuccessful"}}`}
		c := fuzzClient(t, tr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res := &DeployResult{}
		err := c.pollARM(ctx, Target{ResourceGroup: "rg", App: "app", Slot: "staging"}, "eacfd68b", res)
		okCode := tr.code == http.StatusOK || tr.code == http.StatusAccepted

		var ds armDeploymentStatus
		typed := json.Unmarshal(body, &ds) == nil && ds.Properties.Status != ""
		st := ds.Properties.Status

		if err != nil && !errors.Is(err, errStatusUnavailable) {
			if p, ok := problem.As(err); !ok || p.What == "" {
				t.Fatalf("error is not a problem with a message: %#v", err)
			}
		}
		if okCode && !typed && !errors.Is(err, errStatusUnavailable) {
			t.Fatalf("unreadable status %q: got %v, want the Kudu fallback", body, err)
		}
		if okCode && typed {
			switch st {
			case "BuildFailed", "BuildAborted", "RuntimeFailed", "TimedOut":
				var de *DeployError
				if !errors.As(err, &de) || de.Status != st || problem.ExitCode(err) != problem.ExitFailure {
					t.Fatalf("status %s: got %v", st, err)
				}
				for _, e := range de.Errors {
					if e == "" {
						t.Fatalf("status %s: empty error message kept", st)
					}
				}
			case "RuntimeSuccessful":
				if err != nil || tr.calls != 1 {
					t.Fatalf("status %s: got %v after %d calls", st, err, tr.calls)
				}
			default:
				if err != nil {
					t.Fatalf("in-progress status %q: got %v", st, err)
				}
				p := ds.Properties
				idle := st == "RuntimeStarting" && p.NumberOfInstancesInProgress == 0 && p.NumberOfInstancesSuccessful == 0 && p.NumberOfInstancesFailed == 0
				if idle && (tr.calls != 3 || len(res.Warnings) == 0) {
					t.Fatalf("RuntimeStarting with no instances: %d calls, warnings %v", tr.calls, res.Warnings)
				}
				if !idle && tr.calls <= tr.repeat {
					t.Fatalf("in-progress status %q ended the poll after %d calls", st, tr.calls)
				}
			}
		}
	})
}
