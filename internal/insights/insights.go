// Package insights talks to Application Insights: the component's ARM
// resource (its AppId), the query API (requests per role, for deployment
// gates) with an Entra token (query API keys are retired), and the
// component's release annotations.
package insights

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/google/uuid"

	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// armFixes are the fixes for ARM's answers about a component, by status.
var armFixes = map[int]string{
	http.StatusNotFound:     "check the Application Insights resource id (--app-insights): subscription, resource group and name",
	http.StatusForbidden:    "give the principal Monitoring Contributor on the Application Insights resource (annotations) or Monitoring Reader (gates)",
	http.StatusUnauthorized: "the token was refused; check the credential and the arm-audience",
}

// DefaultQueryEndpoint is the public cloud's query API.
const DefaultQueryEndpoint = "https://api.applicationinsights.io"

// QueryAudience is the resource query tokens are issued for.
const QueryAudience = "https://api.applicationinsights.io"

const (
	moduleName    = "djdeploy/insights"
	moduleVersion = "v1.0.0"
	componentAPI  = "2020-02-02"
	annotationAPI = "2015-05-01"
)

// Client reads and annotates one subscription's components.
type Client struct {
	arm      *arm.Client
	query    runtime.Pipeline
	endpoint string // ARM base URL
	queryURL string
}

// New returns a client; queryEndpoint "" means the public cloud's.
func New(cred azcore.TokenCredential, opts *arm.ClientOptions, queryEndpoint string) (*Client, error) {
	if opts == nil {
		opts = &arm.ClientOptions{}
	}
	ac, err := arm.NewClient(moduleName, moduleVersion, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("creating the ARM client: %w", err)
	}
	if queryEndpoint == "" {
		queryEndpoint = DefaultQueryEndpoint
	}
	qo := opts.ClientOptions
	pl := runtime.NewPipeline(moduleName, moduleVersion, runtime.PipelineOptions{
		PerRetry: []policy.Policy{runtime.NewBearerTokenPolicy(cred, []string{QueryAudience + "/.default"},
			&policy.BearerTokenOptions{InsecureAllowCredentialWithHTTP: opts.InsecureAllowCredentialWithHTTP})},
	}, &qo)
	return &Client{arm: ac, query: pl, endpoint: ac.Endpoint(), queryURL: strings.TrimSuffix(queryEndpoint, "/")}, nil
}

// Component is what a gate needs of an Application Insights resource.
type Component struct {
	ID    string
	AppID string
}

// GetComponent reads the component by its ARM resource id.
func (c *Client) GetComponent(ctx context.Context, resourceID string) (*Component, error) {
	if !strings.Contains(strings.ToLower(resourceID), "/providers/microsoft.insights/components/") {
		return nil, problem.Usagef("give the component's resource id: /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Insights/components/NAME",
			"%q is not an Application Insights resource id", resourceID)
	}
	var body struct {
		ID         string `json:"id"`
		Properties struct {
			AppID string `json:"AppId"`
		} `json:"properties"`
	}
	if err := c.armDo(ctx, http.MethodGet, resourceID, componentAPI, nil, &body); err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			// A setting names it: the user must change it (exit 2).
			return nil, problem.Usagef("check --app-insights: the resource id of an existing Application Insights component",
				"Application Insights %s does not exist", resourceID)
		}
		return nil, azure.ARMError(err, "reading Application Insights "+resourceID, armFixes)
	}
	if body.Properties.AppID == "" {
		return nil, problem.Failf("check the resource is an Application Insights component", "Application Insights %s reported no AppId", resourceID)
	}
	return &Component{ID: resourceID, AppID: body.Properties.AppID}, nil
}

// AppIDFromConnectionString reads ApplicationId from an
// APPLICATIONINSIGHTS_CONNECTION_STRING value ("" when absent).
func AppIDFromConnectionString(cs string) string {
	for _, part := range strings.Split(cs, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "ApplicationId") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Stats are a role's requests over a window.
type Stats struct {
	Requests int
	Failed   int
	P95      time.Duration // 0 when there were no requests
}

// Requests queries the requests a role (cloud_RoleName: "<app>" for
// production, "<app>-<slot>" for a slot) served in [from, to).
func (c *Client) Requests(ctx context.Context, appID, role string, from, to time.Time) (*Stats, error) {
	q := fmt.Sprintf(`requests
| where timestamp >= datetime(%s) and timestamp < datetime(%s) and cloud_RoleName == %q
| summarize total = count(), failed = countif(success == false), p95 = percentile(duration, 95)`,
		from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), role)
	body, _ := json.Marshal(map[string]string{
		"query":    q,
		"timespan": from.UTC().Format(time.RFC3339) + "/" + to.UTC().Add(time.Second).Format(time.RFC3339),
	})
	req, err := runtime.NewRequest(ctx, http.MethodPost, c.queryURL+"/v1/apps/"+url.PathEscape(appID)+"/query")
	if err != nil {
		return nil, err
	}
	if err := req.SetBody(streaming(body), "application/json"); err != nil {
		return nil, err
	}
	resp, err := c.query.Do(req)
	if err != nil {
		return nil, fmt.Errorf("querying Application Insights: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, problem.Failf("check that the principal has Monitoring Reader on the Application Insights resource",
			"the Application Insights query answered %d: %s", resp.StatusCode, short(raw))
	}
	var res struct {
		Tables []struct {
			Columns []struct{ Name string } `json:"columns"`
			Rows    [][]any                 `json:"rows"`
		} `json:"tables"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || len(res.Tables) == 0 || len(res.Tables[0].Rows) == 0 {
		return nil, fmt.Errorf("reading the Application Insights answer: unexpected shape: %s", short(raw))
	}
	t := res.Tables[0]
	st := &Stats{}
	for i, col := range t.Columns {
		if i >= len(t.Rows[0]) {
			break
		}
		v, _ := t.Rows[0][i].(float64)
		switch col.Name {
		case "total":
			st.Requests = int(v)
		case "failed":
			st.Failed = int(v)
		case "p95":
			st.P95 = time.Duration(v * float64(time.Millisecond))
		}
	}
	return st, nil
}

// Annotation is a release event on the component's charts.
type Annotation struct {
	Name       string
	Time       time.Time
	Properties map[string]string // ReleaseId, Commit, RunURL, Outcome...
}

// Annotate writes a Deployment annotation to the component.
func (c *Client) Annotate(ctx context.Context, resourceID string, a Annotation) error {
	props, _ := json.Marshal(a.Properties)
	body := map[string]string{
		"Id":             uuid.NewString(),
		"AnnotationName": a.Name,
		"Category":       "Deployment",
		"EventTime":      a.Time.UTC().Format(time.RFC3339),
		"Properties":     string(props),
	}
	if err := c.armDo(ctx, http.MethodPut, resourceID+"/Annotations", annotationAPI, body, nil); err != nil {
		return azure.ARMError(err, "writing the release annotation to "+resourceID, armFixes)
	}
	return nil
}

func (c *Client) armDo(ctx context.Context, method, path, apiVersion string, in, out any) error {
	req, err := runtime.NewRequest(ctx, method, runtime.JoinPaths(c.endpoint, path))
	if err != nil {
		return err
	}
	qp := req.Raw().URL.Query()
	qp.Set("api-version", apiVersion)
	req.Raw().URL.RawQuery = qp.Encode()
	if in != nil {
		b, _ := json.Marshal(in)
		if err := req.SetBody(streaming(b), "application/json"); err != nil {
			return err
		}
	}
	resp, err := c.arm.Pipeline().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !runtime.HasStatusCode(resp, http.StatusOK, http.StatusCreated) {
		return runtime.NewResponseError(resp)
	}
	if out != nil {
		return runtime.UnmarshalAsJSON(resp, out)
	}
	return nil
}

type readSeekNopCloser struct{ *bytes.Reader }

func (readSeekNopCloser) Close() error { return nil }

func streaming(b []byte) readSeekNopCloser { return readSeekNopCloser{bytes.NewReader(b)} }

func short(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
