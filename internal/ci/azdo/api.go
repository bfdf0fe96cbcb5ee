package azdo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/microsoft/azure-devops-go-api/azuredevops/v7"
	"github.com/microsoft/azure-devops-go-api/azuredevops/v7/build"
	"github.com/microsoft/azure-devops-go-api/azuredevops/v7/git"
)

// API tags runs and comments on pull requests through the Azure DevOps REST
// API, with the job's System.AccessToken.
type API struct {
	conn    *azuredevops.Connection
	project string
}

// NewAPI connects to the organization at collectionURL
// (SYSTEM_COLLECTIONURI) for project (SYSTEM_TEAMPROJECTID or its name).
func NewAPI(collectionURL, token, project string) *API {
	conn := azuredevops.NewAnonymousConnection(strings.TrimSuffix(collectionURL, "/"))
	// System.AccessToken is an OAuth token: bearer, not a PAT's basic auth.
	conn.AuthorizationString = "Bearer " + token
	timeout := 30 * time.Second
	conn.Timeout = &timeout
	return &API{conn: conn, project: project}
}

// TagBuild adds tag to the run (build) buildID.
func (a *API) TagBuild(ctx context.Context, buildID int, tag string) error {
	c, err := build.NewClient(ctx, a.conn)
	if err != nil {
		return fmt.Errorf("connecting to the build service: %w", err)
	}
	if _, err := c.AddBuildTag(ctx, build.AddBuildTagArgs{Project: &a.project, BuildId: &buildID, Tag: &tag}); err != nil {
		return fmt.Errorf("tagging run %d: %w", buildID, err)
	}
	return nil
}

// UpsertThread updates the first comment of the pull request thread whose
// first comment contains marker, or starts a thread: re-runs keep one
// thread. It reports whether a thread was created.
func (a *API) UpsertThread(ctx context.Context, repositoryID string, pr int, marker, body string) (created bool, err error) {
	c, err := git.NewClient(ctx, a.conn)
	if err != nil {
		return false, fmt.Errorf("connecting to the git service: %w", err)
	}
	threads, err := c.GetThreads(ctx, git.GetThreadsArgs{RepositoryId: &repositoryID, PullRequestId: &pr, Project: &a.project})
	if err != nil {
		return false, fmt.Errorf("listing pull request threads: %w", err)
	}
	for _, t := range *threads {
		if t.Comments == nil || len(*t.Comments) == 0 || t.Id == nil {
			continue
		}
		first := (*t.Comments)[0]
		if first.Content == nil || !strings.Contains(*first.Content, marker) || first.Id == nil {
			continue
		}
		if *first.Content == body {
			return false, nil
		}
		content := body
		if _, err := c.UpdateComment(ctx, git.UpdateCommentArgs{
			Comment: &git.Comment{Content: &content}, RepositoryId: &repositoryID, PullRequestId: &pr,
			ThreadId: t.Id, CommentId: first.Id, Project: &a.project,
		}); err != nil {
			return false, fmt.Errorf("updating thread %d: %w", *t.Id, err)
		}
		return false, nil
	}
	content := body
	ctype := git.CommentTypeValues.Text
	// Closed: an information, not a discussion to resolve before merging.
	status := git.CommentThreadStatusValues.Closed
	if _, err := c.CreateThread(ctx, git.CreateThreadArgs{
		CommentThread: &git.GitPullRequestCommentThread{
			Comments: &[]git.Comment{{Content: &content, CommentType: &ctype}},
			Status:   &status,
		},
		RepositoryId: &repositoryID, PullRequestId: &pr, Project: &a.project,
	}); err != nil {
		return false, fmt.Errorf("creating a pull request thread: %w", err)
	}
	return true, nil
}
