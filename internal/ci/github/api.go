package github

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	gh "github.com/google/go-github/v62/github"
)

// API records deployments and preview comments through the GitHub REST API.
type API struct {
	c           *gh.Client
	owner, repo string
}

// NewAPI returns a client for repository ("owner/name") at baseURL
// (GITHUB_API_URL; https://api.github.com when empty), authenticated with
// token. Tests pass an httptest server's URL and client.
func NewAPI(hc *http.Client, baseURL, token, repository string) (*API, error) {
	owner, repo, ok := strings.Cut(repository, "/")
	if !ok || owner == "" || repo == "" {
		return nil, fmt.Errorf("repository %q is not owner/name", repository)
	}
	c := gh.NewClient(hc).WithAuthToken(token)
	if baseURL != "" {
		u, err := url.Parse(strings.TrimSuffix(baseURL, "/") + "/")
		if err != nil {
			return nil, fmt.Errorf("GitHub API URL %q: %w", baseURL, err)
		}
		c.BaseURL = u
	}
	return &API{c: c, owner: owner, repo: repo}, nil
}

// StartDeployment creates a deployment of ref to environment and marks it in
// progress. Required status checks are not re-verified (the workflow ran
// them), and the deployment is never merged into anything.
func (a *API) StartDeployment(ctx context.Context, ref, environment, description, logURL string) (int64, error) {
	if ref == "" {
		return 0, fmt.Errorf("no commit to record (GITHUB_SHA is empty)")
	}
	d, _, err := a.c.Repositories.CreateDeployment(ctx, a.owner, a.repo, &gh.DeploymentRequest{
		Ref:                   gh.String(ref),
		Task:                  gh.String("deploy"),
		AutoMerge:             gh.Bool(false),
		RequiredContexts:      &[]string{},
		Environment:           gh.String(environment),
		Description:           gh.String(description),
		ProductionEnvironment: gh.Bool(environment == "production"),
	})
	if err != nil {
		return 0, fmt.Errorf("creating the deployment: %w", err)
	}
	if _, _, err := a.c.Repositories.CreateDeploymentStatus(ctx, a.owner, a.repo, d.GetID(), &gh.DeploymentStatusRequest{
		State:  gh.String("in_progress"),
		LogURL: gh.String(logURL),
	}); err != nil {
		return d.GetID(), fmt.Errorf("marking deployment %d in progress: %w", d.GetID(), err)
	}
	return d.GetID(), nil
}

// FinishDeployment records the outcome ("success" or "failure").
func (a *API) FinishDeployment(ctx context.Context, id int64, state, environmentURL, logURL, description string) error {
	req := &gh.DeploymentStatusRequest{State: gh.String(state), LogURL: gh.String(logURL), Description: gh.String(description)}
	if environmentURL != "" {
		req.EnvironmentURL = gh.String(environmentURL)
	}
	if state == "success" {
		// Earlier successful deployments to the environment become
		// inactive, as on GitHub's own environment page.
		req.AutoInactive = gh.Bool(true)
	}
	if _, _, err := a.c.Repositories.CreateDeploymentStatus(ctx, a.owner, a.repo, id, req); err != nil {
		return fmt.Errorf("setting deployment %d to %s: %w", id, state, err)
	}
	return nil
}

// UpsertComment updates the pull request comment that contains marker, or
// creates one: re-runs keep one comment instead of adding another. It
// reports whether a comment was created.
func (a *API) UpsertComment(ctx context.Context, pr int, marker, body string) (created bool, err error) {
	opt := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		comments, resp, err := a.c.Issues.ListComments(ctx, a.owner, a.repo, pr, opt)
		if err != nil {
			return false, fmt.Errorf("listing comments: %w", err)
		}
		for _, c := range comments {
			if strings.Contains(c.GetBody(), marker) {
				if c.GetBody() == body {
					return false, nil
				}
				if _, _, err := a.c.Issues.EditComment(ctx, a.owner, a.repo, c.GetID(), &gh.IssueComment{Body: gh.String(body)}); err != nil {
					return false, fmt.Errorf("updating comment %d: %w", c.GetID(), err)
				}
				return false, nil
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	if _, _, err := a.c.Issues.CreateComment(ctx, a.owner, a.repo, pr, &gh.IssueComment{Body: gh.String(body)}); err != nil {
		return false, fmt.Errorf("creating the comment: %w", err)
	}
	return true, nil
}
