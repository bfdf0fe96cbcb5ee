package artifact

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// ManifestName is the file name of the manifest in the output folder.
const ManifestName = "release.json"

// SchemaVersion is the release.json schema this package writes and reads.
const SchemaVersion = 1

// Dependency modes.
const (
	ModeRemote = "remote" // App Service (Oryx) installs requirements.txt during deployment
	ModeLocal  = "local"  // wheels vendored into the zip
)

// Manifest is release.json: what a build produced, consumed by static sync,
// deploy and the release report. Field order and names are a contract.
type Manifest struct {
	Schema         int               `json:"schema"`
	Project        string            `json:"project"`
	ReleaseID      string            `json:"release_id"`
	GitCommit      string            `json:"git_commit"`
	PythonVersion  string            `json:"python_version"`
	DjangoVersion  string            `json:"django_version"`
	SettingsModule string            `json:"settings_module"`
	DependencyMode string            `json:"dependency_mode"`
	StaticURL      string            `json:"static_url"`
	StaticRoot     string            `json:"static_root"`
	AppZip         ZipInfo           `json:"app_zip"`
	AppSettings    map[string]string `json:"app_settings"`
	StartupHint    StartupHint       `json:"startup_hint"`
	Checks         []Check           `json:"checks"`
	Static         []StaticFile      `json:"static"`
}

// ZipInfo describes app.zip; Path is relative to the manifest's folder.
type ZipInfo struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// StartupHint is what the startup command needs: the ASGI module for
// gunicorn and, in local dependency mode, the PYTHONPATH of the vendored
// packages.
type StartupHint struct {
	ASGIModule string `json:"asgi_module"`
	PythonPath string `json:"pythonpath"`
}

// Check is one finding of `manage.py check --deploy`.
type Check struct {
	ID      string `json:"id"`
	Level   string `json:"level"` // DEBUG, INFO, WARNING, ERROR, CRITICAL
	Message string `json:"message"`
	Hint    string `json:"hint"`
}

// StaticFile is one collected static file, relative to the static folder.
type StaticFile struct {
	Path        string `json:"path"`
	Size        int64  `json:"size"`
	MD5         string `json:"md5"` // base64 of the 16-byte digest, as in Content-MD5
	ContentType string `json:"content_type"`
	// Hashed is true when the name carries a content hash (safe to cache forever).
	Hashed bool `json:"hashed"`
}

var (
	releaseIDRe = regexp.MustCompile(`^[0-9a-f]{16}$`)
	sha256Re    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	pyVersionRe = regexp.MustCompile(`^3\.[0-9]{1,2}$`)
)

var checkLevels = map[string]bool{"DEBUG": true, "INFO": true, "WARNING": true, "ERROR": true, "CRITICAL": true}

// Validate reports the first way m breaks the contract.
func (m *Manifest) Validate() error {
	switch {
	case m.Schema != SchemaVersion:
		return fmt.Errorf("schema is %d, this djdeploy reads %d", m.Schema, SchemaVersion)
	case m.Project == "":
		return errors.New("project is empty")
	case !releaseIDRe.MatchString(m.ReleaseID):
		return fmt.Errorf("release_id %q is not 16 lowercase hex digits", m.ReleaseID)
	case !pyVersionRe.MatchString(m.PythonVersion):
		return fmt.Errorf("python_version %q is not of the form 3.X", m.PythonVersion)
	case m.SettingsModule == "":
		return errors.New("settings_module is empty")
	case m.DependencyMode != ModeRemote && m.DependencyMode != ModeLocal:
		return fmt.Errorf("dependency_mode %q is neither remote nor local", m.DependencyMode)
	case m.StaticURL == "":
		return errors.New("static_url is empty")
	case !relPathOK(m.StaticRoot):
		return fmt.Errorf("static_root %q is not a relative path inside the project", m.StaticRoot)
	case !relPathOK(m.AppZip.Path):
		return fmt.Errorf("app_zip.path %q is not a relative path", m.AppZip.Path)
	case m.AppZip.Size <= 0:
		return fmt.Errorf("app_zip.size %d is not positive", m.AppZip.Size)
	case !sha256Re.MatchString(m.AppZip.SHA256):
		return fmt.Errorf("app_zip.sha256 %q is not 64 lowercase hex digits", m.AppZip.SHA256)
	case m.AppSettings == nil:
		return errors.New("app_settings is missing")
	case m.StartupHint.ASGIModule == "":
		return errors.New("startup_hint.asgi_module is empty")
	}
	for i, c := range m.Checks {
		if c.ID == "" || !checkLevels[c.Level] {
			return fmt.Errorf("checks[%d]: needs an id and a level among DEBUG, INFO, WARNING, ERROR, CRITICAL", i)
		}
	}
	for i, f := range m.Static {
		if !relPathOK(f.Path) {
			return fmt.Errorf("static[%d].path %q is not a clean relative path", i, f.Path)
		}
		if i > 0 && m.Static[i-1].Path >= f.Path {
			return fmt.Errorf("static is not sorted by path, or repeats one: %q then %q", m.Static[i-1].Path, f.Path)
		}
		if f.Size < 0 {
			return fmt.Errorf("static[%d].size is negative", i)
		}
		if d, err := base64.StdEncoding.DecodeString(f.MD5); err != nil || len(d) != 16 {
			return fmt.Errorf("static[%d].md5 %q is not base64 of a 16-byte MD5", i, f.MD5)
		}
		if f.ContentType == "" {
			return fmt.Errorf("static[%d].content_type is empty", i)
		}
	}
	return nil
}

// relPathOK accepts clean, slash-separated, relative paths that stay inside.
func relPathOK(p string) bool {
	return p != "" && p != "." && !strings.HasPrefix(p, "/") && !strings.Contains(p, `\`) &&
		path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// ReadManifest reads and validates a release.json.
func ReadManifest(file string) (*Manifest, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &problem.Error{Usage: true, What: fmt.Sprintf("release manifest %s does not exist", file),
				Fix: "run 'djdeploy build --out DIR' first and point at DIR/release.json", Err: err}
		}
		return nil, problem.Wrap(err, "check the file's permissions", "reading release manifest %s", file)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, problem.Usagef("rebuild it with 'djdeploy build'", "release manifest %s is not valid JSON: %v", file, err)
	}
	if err := m.Validate(); err != nil {
		return nil, problem.Usagef("rebuild it with 'djdeploy build' (same djdeploy version as the deploy)", "release manifest %s is invalid: %v", file, err)
	}
	return &m, nil
}

// writeManifest writes m atomically: a reader never sees half a file.
func writeManifest(file string, m *Manifest) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("built manifest is invalid (a djdeploy bug): %w", err)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return os.Rename(tmp, file)
}

// releaseID is the first 16 hex digits of sha256 over the zip's digest and
// the static listing: the same source and static files give the same id.
// IsReleaseID says whether s has the form of a release id (16 lowercase
// hex digits), as every build writes it.
func IsReleaseID(s string) bool { return releaseIDRe.MatchString(s) }

func releaseID(zipSHA256 string, static []StaticFile) string {
	h := sha256.New()
	h.Write([]byte("djdeploy release v1\nzip " + zipSHA256 + "\n"))
	for _, f := range static {
		fmt.Fprintf(h, "static %s %d %s\n", f.Path, f.Size, f.MD5)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
