package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/djdeploy/djdeploy/internal/staticsync"
	"github.com/spf13/cobra"
)

func init() { register(20, newStaticCmd) }

func newStaticCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "static",
		Short: "Upload static files to Blob Storage, prune old ones, hold the release lock",
		Long: `The static commands keep a Blob Storage container in step with the files
'manage.py collectstatic' wrote.

  sync             upload new and changed files (by content: size and MD5)
  prune            delete files no protected release references
  mark-production  record that a release reached production (prune keeps it)

Sign-in, in order: AZURE_STORAGE_CONNECTION_STRING (account key or SAS), a
--blob-endpoint carrying a SAS token, then Microsoft Entra ID for
--storage-account (the identity needs the 'Storage Blob Data Contributor'
role).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newStaticSyncCmd(env), newStaticPruneCmd(env), newStaticMarkCmd(env))
	return cmd
}

func newStaticSyncCmd(env *Env) *cobra.Command {
	var source string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "sync --source DIR",
		Short: "Upload new and changed static files, with the right headers",
		Long: `Sync uploads a folder of collected static files to a Blob container
(and optional prefix), and only what changed: it lists the container and
compares each file's size and MD5 with the blob's, never modification times.
A blob changed or deleted outside djdeploy is noticed and uploaded again.
Sync never deletes; see 'djdeploy static prune'.

Headers are set without configuration: Content-Type by file type;
Cache-Control "public, max-age=31536000, immutable" for content-hashed names
(Django's ManifestStaticFilesStorage, bundlers), static-cache-control for
the rest; static-headers overrides per glob. Every blob gets Content-MD5.

When release.json from 'djdeploy build' sits beside the folder (or is given
with --release-manifest), its MD5s, hashed flags and release id are used.
Otherwise MD5s are computed, staticfiles.json decides which names are
hashed, and the release id is derived from the content.

Each sync records the release's file list in releases/<id>.json in the
private container djdeploy-state of the same account (under
<container>/<prefix>.djdeploy/, never where anonymous reads reach it) and
holds a lease on the lock blob there while it writes, so
concurrent releases take turns. Results go to stdout: counts, and the
changed paths without a content hash (what a CDN purge needs).`,
		Example: `  # from a build
  djdeploy static sync --source build/static --storage-account mysite --static-container static

  # Azurite or an account key
  AZURE_STORAGE_CONNECTION_STRING='...' djdeploy static sync --source staticfiles --dry-run

  # store text gzip-compressed and allow fonts to load from www.example.com
  djdeploy static sync --source staticfiles --static-compress gzip --static-cors-origins https://www.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := env.LoadSettings(cmd, env.ProjectDir(cmd))
			if err != nil {
				return err
			}
			if source == "" {
				return problem.Usagef("pass --source with the folder collectstatic wrote (build's --out DIR/static)", "missing --source")
			}
			hdr, err := staticHeaders(vals)
			if err != nil {
				return err
			}
			c, err := openStatic(cmd.Context(), vals)
			if err != nil {
				return err
			}
			rep := env.staticProgress()
			src, err := staticsync.ReadSource(cmd.Context(), source, vals.String("release-manifest"))
			if err != nil {
				return err
			}
			stop := progress.Long(rep, "uploading "+source)
			res, err := c.Sync(cmd.Context(), src, staticsync.SyncOptions{
				Headers:     hdr,
				Concurrency: vals.Int("static-concurrency"),
				DryRun:      dryRun,
				Holder:      staticLockHolder(env.getenv),
				LockWait:    vals.Duration("lock-timeout"),
			}, rep)
			stop()
			if err != nil {
				return err
			}
			out := staticSyncOutput{Result: res}
			if !dryRun {
				if origins := vals.List("static-cors-origins"); len(origins) > 0 {
					changed, err := c.SetCORS(cmd.Context(), origins)
					if err != nil {
						return err
					}
					out.CORSUpdated = changed
				}
				// The access check costs a request: do it when something
				// new landed, not on every no-op run.
				if res.ContainerCreated || res.Uploaded > 0 {
					probe := ""
					if len(res.Changed) > 0 {
						probe = strings.TrimPrefix(res.Changed[0], "/")
					}
					if a, err := c.CheckAccess(cmd.Context(), probe); err == nil {
						out.Access = &a
						rep.Infof("%s", a.Advice)
					} else {
						rep.Warnf("could not check public access: %v", err)
					}
				}
			}
			if dryRun {
				env.Outcome(OutcomePlanned)
			}
			if !env.Result(cmd, out) {
				return nil
			}
			printSync(env.Out, c, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "folder of collected static files (STATIC_ROOT, or build's --out DIR/static)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan; change nothing (no container, no lock, no upload)")
	bindSettings(cmd, "static sync")
	return cmd
}

// markResult is static mark-production's result.
type markResult struct {
	ReleaseID string `json:"release_id"`
	URL       string `json:"url"`
	Container string `json:"container"`
	Prefix    string `json:"prefix"`
}

type staticSyncOutput struct {
	*staticsync.Result
	CORSUpdated bool               `json:"cors_updated"`
	Access      *staticsync.Access `json:"access,omitempty"`
}

func printSync(w io.Writer, c *staticsync.Client, out staticSyncOutput) {
	r := out.Result
	verb := "uploaded"
	if r.DryRun {
		verb = "would upload"
	}
	fmt.Fprintf(w, "static sync to %s/%s: %d files, %s\n", c.URL(), r.Prefix, r.Files, progress.HumanBytes(r.Bytes))
	fmt.Fprintf(w, "  %s %d (%s), skipped %d unchanged (%s), headers updated %d\n",
		verb, r.Uploaded, progress.HumanBytes(r.UploadedBytes), r.Skipped, progress.HumanBytes(r.SkippedBytes), r.HeadersUpdated)
	fmt.Fprintf(w, "  release %s: %s\n", r.ReleaseID, r.Manifest)
	if r.DryRun && len(r.Changed) > 0 {
		fmt.Fprintf(w, "  would change:\n")
		for i, p := range r.Changed {
			if i == 50 {
				fmt.Fprintf(w, "    ... and %d more (--json lists all)\n", len(r.Changed)-50)
				break
			}
			fmt.Fprintf(w, "    %s\n", p)
		}
	}
	if len(r.PurgePaths) > 0 {
		fmt.Fprintf(w, "  changed paths without a content hash (purge these on the CDN):\n")
		for _, p := range r.PurgePaths {
			fmt.Fprintf(w, "    %s\n", p)
		}
	}
}

func newStaticPruneCmd(env *Env) *cobra.Command {
	var dryRun bool
	var protect []string
	cmd := &cobra.Command{
		Use:   "prune [--static-keep N] [--static-grace DURATION] [--protect ID,...]",
		Short: "Delete static files no protected release references",
		Long: `Prune deletes blobs under the prefix that no protected release references
and that are older than the grace period, then the manifests of the
releases it no longer protects. Protected are: the ids given with
--protect (what production and each slot run now), the last --static-keep
releases that reached production (see mark-production), and releases
synced within the grace period. Failed releases never reach the production
history, so a run of them cannot push the live release out.

A protected release without a manifest stops prune before it deletes
anything. djdeploy's own state (in the private container djdeploy-state)
is never deleted, except the manifests of pruned releases. Prune stays in
its prefix: a folder holding another prefix's djdeploy state is left alone,
and an empty prefix in a container where other prefixes keep state is
refused.`,
		Example: `  djdeploy static prune --static-keep 3 --protect 5f3c2a1b9e7d --dry-run
  djdeploy static prune --static-grace 0s --static-keep 1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := env.LoadSettings(cmd, env.ProjectDir(cmd))
			if err != nil {
				return err
			}
			c, err := openStatic(cmd.Context(), vals)
			if err != nil {
				return err
			}
			res, err := c.Prune(cmd.Context(), staticsync.PruneOptions{
				Keep: vals.Int("static-keep"), Grace: vals.Duration("static-grace"), Protect: protect, DryRun: dryRun,
				Holder: staticLockHolder(env.getenv), LockWait: vals.Duration("lock-timeout"),
			}, env.staticProgress())
			if err != nil {
				return err
			}
			if dryRun {
				env.Outcome(OutcomePlanned)
			}
			if !env.Result(cmd, res) {
				return nil
			}
			verb := "deleted"
			if dryRun {
				verb = "would delete"
			}
			fmt.Fprintf(env.Out, "static prune of %s/%s: %s %d files (%s), kept %d; pruned releases: %s\n",
				c.URL(), c.Prefix(), verb, res.Deleted, progress.HumanBytes(res.DeletedBytes), res.Kept, strings.Join(res.PrunedReleases, ", "))
			for id, why := range res.Protected {
				fmt.Fprintf(env.Out, "  kept release %s: %s\n", id, why)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&protect, "protect", nil, "release ids whose files must stay (what production and the slots run now)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be deleted; delete nothing")
	bindSettings(cmd, "static prune")
	return cmd
}

func newStaticMarkCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mark-production RELEASE_ID",
		Short: "Record that a release reached production, so prune keeps its files",
		Long: `The release command does this after a successful swap. Use it by hand
when you swap outside djdeploy. The release must have been synced to this
container (its manifest must exist).`,
		Example: `  djdeploy static mark-production 5f3c2a1b9e7d`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vals, err := env.LoadSettings(cmd, env.ProjectDir(cmd))
			if err != nil {
				return err
			}
			c, err := openStatic(cmd.Context(), vals)
			if err != nil {
				return err
			}
			if err := c.MarkProduction(cmd.Context(), args[0]); err != nil {
				return err
			}
			if !env.Result(cmd, markResult{ReleaseID: args[0], Container: c.Container(), Prefix: c.Prefix(), URL: c.URL()}) {
				return nil
			}
			fmt.Fprintf(env.Out, "release %s recorded as production in %s/%s\n", args[0], c.URL(), c.Prefix())
			return nil
		},
	}
	bindSettings(cmd, "static mark-production")
	return cmd
}

func staticHeaders(vals *settings.Values) (staticsync.Headers, error) {
	rules, err := staticsync.ParseHeaderRules(vals.Get("static-headers").Raw)
	if err != nil {
		return staticsync.Headers{}, err
	}
	h := staticsync.Headers{CacheControl: vals.String("static-cache-control"), Rules: rules}
	if c := strings.ToLower(vals.String("static-compress")); c == "gzip" {
		h.Compress = c
	}
	return h, nil
}

// openStatic builds the storage client from settings. The credential
// wiring stays here, small, so it can move to internal/azure's chain.
func openStatic(ctx context.Context, vals *settings.Values) (*staticsync.Client, error) {
	cfg := staticsync.Config{
		Cloud:            vals.String("cloud"),
		Account:          vals.String("storage-account"),
		Endpoint:         vals.String("blob-endpoint"),
		ConnectionString: vals.String("storage-connection-string"),
		Container:        vals.String("static-container"),
		Prefix:           vals.String("static-prefix"),
		Concurrency:      vals.Int("static-concurrency"),
	}
	if err := staticsync.ValidateContainerName(cfg.Container); err != nil {
		return nil, err
	}
	if ca := vals.String("ca-file"); ca != "" {
		hc, err := azure.Config{CAFile: ca}.HTTPClient(0)
		if err != nil {
			return nil, err
		}
		cfg.Transport = hc
	}
	if cfg.ConnectionString == "" && !strings.Contains(cfg.Endpoint, "?") && (cfg.Account != "" || cfg.Endpoint != "") {
		cred, err := staticCredential(vals)
		if err != nil {
			return nil, err
		}
		cfg.Credential = cred
	}
	return staticsync.Open(cfg)
}

func staticCredential(vals *settings.Values) (azcore.TokenCredential, error) {
	// The same chain as ARM (GitHub OIDC, Azure Pipelines, client secret,
	// managed identity, Azure CLI): azblob asks it for a Storage-scoped
	// token. A ready access-token must be one issued for Storage.
	cred, err := AzureConfig(vals).NewCredential(azure.CredentialOptions{
		Kind:                vals.String("credential"),
		TenantID:            vals.String("tenant-id"),
		ClientID:            vals.String("client-id"),
		AccessToken:         vals.String("access-token"),
		ServiceConnectionID: vals.String("service-connection"),
		Getenv:              os.Getenv,
	})
	if err != nil {
		return nil, problem.Wrap(err, "sign in (OIDC in CI, az login in a shell), or set AZURE_STORAGE_CONNECTION_STRING", "no Azure credential for the storage account")
	}
	return cred, nil
}

// staticLockHolder says who this run is, for whoever finds the lock held: the
// CI run's URL when there is one, else user@host.
func staticLockHolder(getenv func(string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	if getenv("GITHUB_RUN_ID") != "" {
		return fmt.Sprintf("%s/%s/actions/runs/%s", strings.TrimRight(getenv("GITHUB_SERVER_URL"), "/"), getenv("GITHUB_REPOSITORY"), getenv("GITHUB_RUN_ID"))
	}
	if getenv("BUILD_BUILDID") != "" && getenv("SYSTEM_COLLECTIONURI") != "" {
		return fmt.Sprintf("%s%s/_build/results?buildId=%s", getenv("SYSTEM_COLLECTIONURI"), getenv("SYSTEM_TEAMPROJECT"), getenv("BUILD_BUILDID"))
	}
	name := "someone"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// staticProgress is the reporter of the static commands.
func (e *Env) staticProgress() progress.Reporter { return e.Progress() }
