package harness

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// randomSecret is a fresh value a test can later search for.
func randomSecret(prefix string) string {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}

// mintJWT is an OIDC ID token as GitHub or Azure DevOps issues it. The
// emulator's authority, like Entra with a federated credential, takes any
// well-formed assertion for the client id; the claims are the real ones so
// the credential's own parsing (subject in error messages) sees real input.
func mintJWT(t *testing.T, issuer, subject string) string {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": issuer, "sub": subject, "aud": "api://AzureADTokenExchange",
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"jti": randomSecret(""),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// fakeGitHub is the GitHub side of an Actions job: the runtime's OIDC token
// endpoint and the REST API's deployments.
type fakeGitHub struct {
	t          *testing.T
	srv        *httptest.Server
	repo       string
	apiToken   string // GITHUB_TOKEN the API accepts
	reqToken   string // ACTIONS_ID_TOKEN_REQUEST_TOKEN the OIDC endpoint accepts
	idToken    string // the ID token it hands out
	mu         sync.Mutex
	idRequests int
	deploys    []map[string]any
	statuses   []map[string]any
}

func newFakeGitHub(t *testing.T, repo string) *fakeGitHub {
	f := &fakeGitHub{t: t, repo: repo, apiToken: randomSecret("ghs_"), reqToken: randomSecret("oidcreq")}
	f.idToken = mintJWT(t, "https://token.actions.githubusercontent.com", "repo:"+repo+":environment:production")
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// apiURL has a path prefix, as GitHub Enterprise's does: a client that
// builds absolute paths misses it.
func (f *fakeGitHub) apiURL() string { return f.srv.URL + "/api/v3" }

// idTokenURL is ACTIONS_ID_TOKEN_REQUEST_URL: it carries a query already,
// to which the client appends &audience=.
func (f *fakeGitHub) idTokenURL() string {
	return f.srv.URL + "/_apis/distributedtask/hubs/Actions/plans/p1/jobs/j1/idtoken?api-version=2.0"
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if strings.HasSuffix(r.URL.Path, "/idtoken") {
		if !strings.EqualFold(r.Header.Get("Authorization"), "bearer "+f.reqToken) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"message":"bad request token"}`)
			return
		}
		if aud := r.URL.Query().Get("audience"); aud != "api://AzureADTokenExchange" || r.URL.Query().Get("api-version") != "2.0" {
			f.t.Errorf("ID token requested with audience %q, query %q", aud, r.URL.RawQuery)
		}
		f.idRequests++
		json.NewEncoder(w).Encode(map[string]any{"count": 1, "value": f.idToken})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.apiToken {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"Bad credentials"}`)
		return
	}
	base := "/api/v3/repos/" + f.repo + "/deployments"
	var body map[string]any
	if r.Method == http.MethodPost {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			f.t.Errorf("%s %s: body is not JSON: %v", r.Method, r.URL.Path, err)
		}
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == base:
		f.deploys = append(f.deploys, body)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"id": 4200 + len(f.deploys), "ref": body["ref"], "environment": body["environment"]})
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, base+"/") && strings.HasSuffix(r.URL.Path, "/statuses"):
		body["deployment"] = strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, base+"/"), "/statuses")
		f.statuses = append(f.statuses, body)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"id": len(f.statuses), "state": body["state"]})
	default:
		f.t.Errorf("unexpected GitHub API call %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found"}`)
	}
}

// fakeADO is the Azure DevOps side of a pipeline job: the REST API's
// location discovery and build tags, and the job's OIDC token endpoint that
// AzurePipelinesCredential calls.
type fakeADO struct {
	t          *testing.T
	srv        *httptest.Server
	token      string // System.AccessToken
	conn       string // the service connection id
	idToken    string
	project    string // project id
	buildID    int
	mu         sync.Mutex
	tags       []string
	options    int
	areas      int
	idRequests int
	// Pull request threads (previews): thread id -> its first comment, on
	// pull request pr of repository repo.
	repo           string
	pr             int
	threads        map[int]string
	threadsCreated int
	threadsUpdated int
}

func newFakeADO(t *testing.T) *fakeADO {
	f := &fakeADO{t: t, token: randomSecret("adotok"), conn: "2f3a1c5e-8d7b-4e6f-9a0b-1c2d3e4f5a6b",
		project: "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c", buildID: 77,
		repo: "5febef5a-833d-4e14-b9c0-14cb638f91e6", pr: 32, threads: map[int]string{}}
	f.idToken = mintJWT(t, "https://vstoken.dev.azure.com/0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "sc://contoso/shop/"+f.conn)
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeADO) collectionURI() string { return f.srv.URL + "/contoso/" }

func (f *fakeADO) oidcURI() string {
	return f.srv.URL + "/0f1e2d3c/_apis/distributedtask/hubs/build/plans/plan1/jobs/job1/oidctoken"
}

func (f *fakeADO) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"TF400813: The user is not authorized to access this resource."}`)
		return
	}
	p := r.URL.Path
	base := "/contoso"
	loc := func(id, area, resource, route string) map[string]any {
		return map[string]any{"id": id, "area": area, "resourceName": resource, "routeTemplate": route,
			"resourceVersion": 1, "minVersion": "1.0", "maxVersion": "7.1", "releasedVersion": "7.0"}
	}
	tagsPrefix := base + "/" + f.project + fmt.Sprintf("/_apis/build/builds/%d/tags/", f.buildID)
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/oidctoken"):
		if q := r.URL.Query(); q.Get("serviceConnectionId") != f.conn || q.Get("api-version") == "" || r.Header.Get("X-TFS-FedAuthRedirect") != "Suppress" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"message":"bad OIDC request %s"}`, url.QueryEscape(r.URL.RawQuery))
			return
		}
		f.idRequests++
		json.NewEncoder(w).Encode(map[string]any{"oidcToken": f.idToken})
	case r.Method == http.MethodOptions && p == base+"/_apis":
		f.options++
		json.NewEncoder(w).Encode(map[string]any{"count": 4, "value": []any{
			loc("e81700f7-3be2-46de-8624-2eb35882fcaa", "Location", "ResourceAreas", "_apis/{resource}/{areaId}"),
			loc("6e6114b2-8161-44c8-8f6c-c5505782427f", "build", "tags", "{project}/_apis/{area}/builds/{buildId}/{resource}/{*tag}"),
			loc("ab6e2e5d-a0b7-4153-b64a-a4efe0d49449", "git", "threads", "{project}/_apis/{area}/repositories/{repositoryId}/pullRequests/{pullRequestId}/{resource}/{threadId}"),
			loc("965a3ec7-5ed8-455a-bdcb-835a5ea7fe7b", "git", "comments", "{project}/_apis/{area}/repositories/{repositoryId}/pullRequests/{pullRequestId}/threads/{threadId}/{resource}/{commentId}"),
		}})
	case r.Method == http.MethodGet && p == base+"/_apis/ResourceAreas":
		f.areas++
		json.NewEncoder(w).Encode(map[string]any{"count": 2, "value": []any{
			map[string]any{"id": "965220d5-5bb9-42cf-8d67-9b146df2a5a4", "name": "build", "locationUrl": f.srv.URL + base + "/"},
			map[string]any{"id": "4e080c62-fa21-4fbc-8fef-2a10a2b38049", "name": "git", "locationUrl": f.srv.URL + base + "/"},
		}})
	case p == fmt.Sprintf("%s/%s/_apis/git/repositories/%s/pullRequests/%d/threads", base, f.project, f.repo, f.pr):
		switch r.Method {
		case http.MethodGet:
			// A reviewer's thread first: djdeploy must find its own.
			list := []any{map[string]any{"id": 1, "comments": []any{map[string]any{"id": 1, "content": "Please add tests"}}}}
			for id, c := range f.threads {
				list = append(list, map[string]any{"id": id, "comments": []any{map[string]any{"id": 1, "content": c}}})
			}
			json.NewEncoder(w).Encode(map[string]any{"count": len(list), "value": list})
		case http.MethodPost:
			var th struct {
				Comments []struct{ Content string } `json:"comments"`
			}
			if err := json.NewDecoder(r.Body).Decode(&th); err != nil || len(th.Comments) != 1 {
				http.Error(w, `{"message":"a thread needs one comment"}`, http.StatusBadRequest)
				return
			}
			id := 100 + len(f.threads)
			f.threads[id] = th.Comments[0].Content
			f.threadsCreated++
			json.NewEncoder(w).Encode(map[string]any{"id": id})
		}
	case r.Method == http.MethodPatch && strings.HasPrefix(p, fmt.Sprintf("%s/%s/_apis/git/repositories/%s/pullRequests/%d/threads/", base, f.project, f.repo, f.pr)):
		var id, cid int
		rest := strings.TrimPrefix(p, fmt.Sprintf("%s/%s/_apis/git/repositories/%s/pullRequests/%d/threads/", base, f.project, f.repo, f.pr))
		if _, err := fmt.Sscanf(rest, "%d/comments/%d", &id, &cid); err != nil || cid != 1 {
			http.Error(w, `{"message":"bad comment path"}`, http.StatusBadRequest)
			return
		}
		if _, ok := f.threads[id]; !ok {
			http.Error(w, `{"message":"no such thread"}`, http.StatusNotFound)
			return
		}
		var c struct{ Content string }
		json.NewDecoder(r.Body).Decode(&c)
		f.threads[id] = c.Content
		f.threadsUpdated++
		json.NewEncoder(w).Encode(map[string]any{"id": cid, "content": c.Content})
	case r.Method == http.MethodPut && strings.HasPrefix(p, tagsPrefix):
		f.tags = append(f.tags, strings.TrimPrefix(p, tagsPrefix))
		json.NewEncoder(w).Encode(map[string]any{"count": len(f.tags), "value": f.tags})
	default:
		f.t.Errorf("unexpected Azure DevOps call %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"not found"}`)
	}
}
