package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/djdeploy/djdeploy/internal/cdn"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/spf13/cobra"
)

func init() { register(50, newPurgeCmd) }

func newPurgeCmd(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "purge --resource-group RG --cdn-profile P --cdn-endpoint E (--path P... | --paths-file F | --changed-file F)",
		Short: "Purge changed paths from Azure Front Door or Azure CDN",
		Long: `Purge removes cached copies of the given paths from an Azure Front Door
(Standard/Premium) or classic Azure CDN endpoint; the kind is read from the
profile's SKU.

Paths come from --path (repeatable), --paths-file (one per line; '-' reads
stdin), or --changed-file: the output of 'djdeploy static sync --json' (its
result's purge_paths) or a list of blob names, which are mapped to URL paths through
the endpoint's origin path (a classic endpoint's own originPath; for Front
Door, --cdn-origin-path, since the origin path lives on the route) and the
static-container.

Requests carry at most 100 paths and run 4 at once. When the paths would need
more than --purge-max-requests requests (default 10), they are collapsed into
/dir/* wildcards (accepted by both services), and into /* as a last resort.

By default purge waits until Azure reports the purge complete (bounded by
--purge-timeout); --no-wait returns once Azure has accepted every request.`,
		Example: `  djdeploy purge -g my-rg --cdn-profile my-fd --cdn-endpoint my-ep --path /static/css/site.css --path /static/js/*
  djdeploy static sync --source build/static --json > sync.json
  djdeploy purge -g my-rg --cdn-profile my-fd --cdn-endpoint my-ep --changed-file sync.json --cdn-origin-path /static
  git diff --name-only | sed 's|^|/|' | djdeploy purge -g my-rg --cdn-profile my-cdn --cdn-endpoint ep --paths-file - --no-wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := env.LoadSettings(cmd, env.ProjectDir(cmd))
			if err != nil {
				return err
			}
			if err := vals.Require("cdn-profile", "cdn-endpoint"); err != nil {
				return err
			}
			rg := vals.String("cdn-resource-group")
			if rg == "" {
				rg = vals.String("resource-group")
			}
			if rg == "" {
				return problem.Usagef("set --resource-group (or --cdn-resource-group)", "missing the CDN profile's resource group")
			}
			paths := vals.List("path")
			if f := vals.String("paths-file"); f != "" {
				lines, err := readLines(env, f)
				if err != nil {
					return err
				}
				paths = append(paths, lines...)
			}
			changed := vals.String("changed-file")
			var blobNames []string
			container := vals.String("static-container")
			if changed != "" {
				var recorded string
				blobNames, recorded, err = readChanged(env, changed)
				if err != nil {
					return err
				}
				// The names are relative to the container sync wrote
				// them to; mapping them through another container's
				// origin path would purge nothing.
				if recorded != "" {
					if vals.Get("static-container").Source != settings.FromDefault && recorded != container {
						return problem.Usagef("drop static-container, or give the sync output of container "+container,
							"%s was written by a sync to container %q, but static-container is %q", changed, recorded, container)
					}
					container = recorded
				}
			}
			if len(paths) == 0 && changed == "" {
				return problem.Usagef("give --path, --paths-file or --changed-file", "nothing to purge: no paths given")
			}
			acc, err := env.Azure(vals)
			if err != nil {
				return err
			}
			log := env.azureProgress(vals)
			p, err := cdn.New(acc.Subscription, acc.Credential, acc.Options, log)
			if err != nil {
				return err
			}
			profile, endpoint := vals.String("cdn-profile"), vals.String("cdn-endpoint")
			kind, sku, err := p.Kind(cmd.Context(), rg, profile)
			if err != nil {
				return err
			}
			log.Infof("profile %s is %s", profile, sku)
			if len(blobNames) > 0 {
				origin := vals.String("cdn-origin-path")
				if origin == "" && kind == cdn.Classic {
					if origin, err = p.OriginPath(cmd.Context(), rg, profile, endpoint, kind); err != nil {
						return err
					}
				}
				mapped, skipped := cdn.BlobNamesToPaths(blobNames, container, origin)
				if len(skipped) > 0 {
					log.Warnf("%d changed blobs lie outside the endpoint's origin path %q and are not purged (first: %s); set cdn-origin-path if it is wrong", len(skipped), origin, skipped[0])
				}
				paths = append(paths, mapped...)
			}
			stop := progress.Long(log, "purge of "+endpoint)
			defer stop()
			res, err := p.Purge(cmd.Context(), cdn.Request{
				ResourceGroup: rg, Profile: profile, Endpoint: endpoint, Kind: kind,
				Domains:     vals.List("domain"),
				Paths:       paths,
				MaxRequests: vals.Int("purge-max-requests"),
				NoWait:      vals.Bool("no-wait"),
				Timeout:     vals.Duration("purge-timeout"),
			})
			if err != nil {
				return err
			}
			if !env.Result(cmd, res) {
				return nil
			}
			verb := "purged"
			if !res.Waited {
				verb = "purge accepted for"
			}
			fmt.Fprintf(env.Out, "%s %d paths on %s (%s) in %d request(s)\n", verb, len(res.Paths), res.Endpoint, res.Kind, res.Requests)
			if res.Collapsed {
				fmt.Fprintf(env.Out, "  %d paths collapsed into wildcards: %s\n", res.Requested, strings.Join(res.Paths, " "))
			}
			return nil
		},
	}
	bindSettings(cmd, "purge")
	return cmd
}

func openInput(env *Env, name string) (io.ReadCloser, error) {
	if name == "-" {
		if env.In == nil {
			return nil, problem.Usagef("pipe the paths in, or give a file", "no standard input")
		}
		return io.NopCloser(env.In), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, problem.Usagef("check the path", "cannot open %s: %v", name, err)
	}
	return f, nil
}

func readLines(env *Env, name string) ([]string, error) {
	r, err := openInput(env, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, problem.Usagef("give a text file, one path per line", "reading %s: %v", name, err)
	}
	return out, nil
}

// readChanged reads static sync's output: its --json object (purge_paths,
// else changed, and the container it synced to), a JSON array of names, or
// one name per line. container is "" when the input does not say.
func readChanged(env *Env, name string) ([]string, string, error) {
	r, err := openInput(env, name)
	if err != nil {
		return nil, "", err
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		return nil, "", problem.Usagef("check the file", "reading %s: %v", name, err)
	}
	trimmed := strings.TrimSpace(string(data))
	switch {
	case strings.HasPrefix(trimmed, "{"):
		// static sync --json's envelope: its result is the sync's output.
		var wrapped struct {
			SchemaVersion int             `json:"schemaVersion"`
			Command       string          `json:"command"`
			Result        json.RawMessage `json:"result"`
		}
		if json.Unmarshal(data, &wrapped) == nil && wrapped.SchemaVersion > 0 {
			if wrapped.Command != "static sync" || len(wrapped.Result) == 0 || string(wrapped.Result) == "null" {
				return nil, "", problem.Usagef("give the output of a successful 'djdeploy static sync --json'",
					"%s is the output of %q, not of a successful static sync", name, wrapped.Command)
			}
			data = wrapped.Result
		}
		var doc struct {
			PurgePaths *[]string `json:"purge_paths"`
			Changed    *[]string `json:"changed"`
			Container  string    `json:"container"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, "", problem.Usagef("give the output of 'djdeploy static sync --json'", "%s is not valid JSON: %v", name, err)
		}
		if doc.PurgePaths != nil {
			return *doc.PurgePaths, doc.Container, nil
		}
		if doc.Changed != nil {
			return *doc.Changed, doc.Container, nil
		}
		return nil, "", problem.Usagef("give the output of 'djdeploy static sync --json'", "%s has neither purge_paths nor changed", name)
	case strings.HasPrefix(trimmed, "["):
		var names []string
		if err := json.Unmarshal(data, &names); err != nil {
			return nil, "", problem.Usagef("give a JSON array of blob names", "%s is not a JSON array of strings: %v", name, err)
		}
		return names, "", nil
	}
	var out []string
	for _, l := range strings.Split(trimmed, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, "", nil
}
