package emulator

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Kudu deployment statuses (DeployStatus.cs).
const (
	kuduPending   = 0
	kuduBuilding  = 1
	kuduDeploying = 2
	kuduFailed    = 3
	kuduSuccess   = 4
)

// busyMessage is Kudu's exact 409 body while a deployment runs.
const busyMessage = "There is a deployment currently in progress. Please try again when it completes."

// deployment is one Kudu deployment of a slot, seen by Kudu
// (/api/deployments) and ARM (deploymentStatus/{id}) alike.
type deployment struct {
	ID          string
	Kind        string // zipdeploy or onedeploy
	Status      int    // Kudu status
	StatusText  string
	BuildStatus string // ARM DeploymentBuildStatus
	Deployer    string
	Author      string
	AuthorEmail string
	Message     string
	Received    time.Time
	Start       time.Time
	End         time.Time
	Complete    bool
	Active      bool
	Log         []logEntry
	FailedLogs  []string
	Errors      []deployError
	done        chan struct{}
}

type logEntry struct {
	Time    time.Time
	ID      string
	Message string
	Type    int // 0 message, 1 warning, 2 error
}

type deployError struct {
	Code    string `json:"extendedCode"`
	Message string `json:"message"`
}

func (d *deployment) logf(typ int, format string, args ...any) {
	d.Log = append(d.Log, logEntry{Time: time.Now().UTC(), ID: newGUID(), Message: fmt.Sprintf(format, args...), Type: typ})
}

func (e *Emulator) kuduHandler(sl *slot) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/publish", func(w http.ResponseWriter, r *http.Request) { e.kuduDeploy(w, r, sl, "onedeploy") })
	mux.HandleFunc("PUT /api/publish", func(w http.ResponseWriter, r *http.Request) { e.kuduDeploy(w, r, sl, "onedeploy") })
	mux.HandleFunc("POST /api/zipdeploy", func(w http.ResponseWriter, r *http.Request) { e.kuduDeploy(w, r, sl, "zipdeploy") })
	listDeployments := func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		list := []any{}
		for i := len(sl.deployments) - 1; i >= 0; i-- {
			list = append(list, e.deployResult(r, sl, sl.deployments[i]))
		}
		e.mu.Unlock()
		writeJSON(w, http.StatusOK, list)
	}
	mux.HandleFunc("GET /api/deployments", listDeployments)
	mux.HandleFunc("GET /api/deployments/{$}", listDeployments) // az webapp log deployment show
	mux.HandleFunc("GET /api/deployments/{id}", func(w http.ResponseWriter, r *http.Request) { e.kuduDeploymentGet(w, r, sl) })
	mux.HandleFunc("GET /api/deployments/{id}/log", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		d := sl.findDeployment(r.PathValue("id"))
		if d == nil {
			http.Error(w, "Not Found", http.StatusNotFound)
			return
		}
		list := []any{}
		for _, l := range d.Log {
			list = append(list, map[string]any{
				"log_time": l.Time.Format(time.RFC3339Nano), "id": l.ID, "message": l.Message, "type": l.Type, "details_url": nil,
			})
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("GET /api/settings", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		writeJSON(w, http.StatusOK, sl.settings)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Kudu (djdeploy emulator) for %s\n", sl.resourceName())
	})
	return mux
}

// findDeployment finds by id, or the newest for "latest". Caller holds e.mu.
func (sl *slot) findDeployment(id string) *deployment {
	if strings.EqualFold(id, "latest") {
		if n := len(sl.deployments); n > 0 {
			return sl.deployments[n-1]
		}
		return nil
	}
	for _, d := range sl.deployments {
		if strings.EqualFold(d.ID, id) {
			return d
		}
	}
	return nil
}

// scmURL is the slot's Kudu address as the client reached it (scheme and
// host of r), else plain http.
func (e *Emulator) scmURL(r *http.Request, sl *slot) string {
	if r != nil {
		return requestBase(r)
	}
	return "http://" + sl.scmHost
}

// deployResult is Kudu's DeployResult JSON. Caller holds e.mu.
func (e *Emulator) deployResult(r *http.Request, sl *slot, d *deployment) map[string]any {
	u := e.scmURL(r, sl) + "/api/deployments/" + d.ID
	ts := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t.Format(time.RFC3339Nano)
	}
	var lastSuccess any
	for _, x := range sl.deployments {
		if x.Status == kuduSuccess && !x.End.IsZero() {
			lastSuccess = x.End.Format(time.RFC3339Nano)
		}
	}
	progress := ""
	if !d.Complete {
		progress = d.BuildStatus
	}
	return map[string]any{
		"id":                    d.ID,
		"status":                d.Status,
		"status_text":           d.StatusText,
		"author_email":          d.AuthorEmail,
		"author":                d.Author,
		"deployer":              d.Deployer,
		"message":               d.Message,
		"progress":              progress,
		"received_time":         ts(d.Received),
		"start_time":            ts(d.Start),
		"end_time":              ts(d.End),
		"last_success_end_time": lastSuccess,
		"complete":              d.Complete,
		"active":                d.Active,
		"is_temp":               false,
		"is_readonly":           true,
		"url":                   u,
		"log_url":               u + "/log",
		"site_name":             sl.site.cfg.Name,
		"provisioningState":     provisioning(d),
	}
}

func provisioning(d *deployment) string {
	switch {
	case !d.Complete:
		return "InProgress"
	case d.Status == kuduSuccess:
		return "Succeeded"
	}
	return "Failed"
}

// kuduDeploymentGet answers /api/deployments/{id|latest}: 202 with
// Location while pending, 200 once complete (DeploymentController.GetResult).
func (e *Emulator) kuduDeploymentGet(w http.ResponseWriter, r *http.Request, sl *slot) {
	e.mu.Lock()
	id := r.PathValue("id")
	d := sl.findDeployment(id)
	if strings.EqualFold(id, "latest") && sl.busy != nil {
		d = sl.busy
	}
	if d == nil {
		e.mu.Unlock()
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	body := e.deployResult(r, sl, d)
	complete := d.Complete
	e.mu.Unlock()
	if !complete {
		w.Header().Set("Location", e.scmURL(r, sl)+r.URL.RequestURI())
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusAccepted, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// kuduDeploy is POST /api/zipdeploy and POST|PUT /api/publish (OneDeploy).
func (e *Emulator) kuduDeploy(w http.ResponseWriter, r *http.Request, sl *slot, kind string) {
	q := r.URL.Query()
	async := strings.EqualFold(q.Get("isAsync"), "true")
	deployer := "ZipDeploy"
	if kind == "onedeploy" {
		async = strings.EqualFold(q.Get("async"), "true")
		deployer = "OneDeploy"
		switch t := strings.ToLower(q.Get("type")); t {
		case "zip":
		case "war", "jar", "ear", "lib", "startup", "static", "script":
			textError(w, http.StatusBadRequest, fmt.Sprintf("type='%s' is not supported for a Python app on Linux; use type=zip.", t))
			return
		case "":
			textError(w, http.StatusBadRequest, "The 'type' query parameter is required, e.g. type=zip.")
			return
		default:
			textError(w, http.StatusBadRequest, fmt.Sprintf("type='%s' not recognized", q.Get("type")))
			return
		}
	}
	if v := q.Get("deployer"); v != "" {
		deployer = v
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" {
		textError(w, http.StatusBadRequest, "packageUri deployments are not supported by the djdeploy emulator; send the zip as the request body.")
		return
	}

	// The package is read before the slot is marked busy, within
	// UploadTimeout: a slow or stalled upload neither holds the slot (every
	// other deployment would get 409 meanwhile) nor the connection forever.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(e.cfg.UploadTimeout))
	zipPath := filepath.Join(sl.dir, "uploads", newGUID()+".zip")
	if err := saveBody(r.Body, zipPath); err != nil {
		_ = os.Remove(zipPath)
		e.logf("kudu: %s upload failed: %v", sl.resourceName(), err)
		textError(w, http.StatusBadRequest, "Could not read the uploaded package: "+err.Error())
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})

	e.mu.Lock()
	if sl.busy != nil {
		id := sl.busy.ID
		e.mu.Unlock()
		_ = os.Remove(zipPath)
		w.Header().Set("SCM-DEPLOYMENT-ID", id)
		textError(w, http.StatusConflict, busyMessage)
		return
	}
	d := &deployment{
		ID: newGUID(), Kind: kind, Status: kuduPending, BuildStatus: "BuildRequestReceived",
		Deployer: deployer, Author: firstNonEmpty(q.Get("author"), "N/A"), AuthorEmail: q.Get("authorEmail"),
		Message: firstNonEmpty(q.Get("message"), "Created via a push deployment"), Received: time.Now().UTC(),
		done: make(chan struct{}),
	}
	sl.busy = d
	sl.deployments = append(sl.deployments, d)
	d.logf(0, "Received deployment request %s (%s).", d.ID, kind)
	e.mu.Unlock()

	e.logf("kudu: %s deployment %s accepted (%s, async=%v)", sl.resourceName(), d.ID, kind, async)
	go e.runDeployment(sl, d, zipPath)

	w.Header().Set("SCM-DEPLOYMENT-ID", d.ID)
	if !async {
		<-d.done
		e.mu.Lock()
		ok := d.Status == kuduSuccess
		e.mu.Unlock()
		if !ok {
			textError(w, http.StatusBadRequest, "Deployment Failed. See "+e.scmURL(r, sl)+"/api/deployments/"+d.ID+"/log")
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	loc := fmt.Sprintf("%s/api/deployments/latest?deployer=%s&time=%s", e.scmURL(r, sl), url.QueryEscape(deployer), d.Received.Format("2006-01-02_15-04-05Z"))
	w.Header().Set("Location", loc)
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusAccepted)
}

func saveBody(body io.Reader, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.LimitReader(body, 2<<30)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func textError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, msg)
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// deploymentStatusJSON is ARM's CsmDeploymentStatus. Caller holds e.mu.
func (e *Emulator) deploymentStatusJSON(sl *slot, d *deployment) map[string]any {
	inProgress, ok, failed := 0, 0, 0
	switch d.BuildStatus {
	case "RuntimeSuccessful":
		ok = 1
	case "RuntimeFailed", "BuildFailed":
		failed = 1
	default:
		inProgress = 1
	}
	var errs any
	if len(d.Errors) > 0 {
		errs = d.Errors
	}
	logs := []any{}
	for _, l := range d.FailedLogs {
		logs = append(logs, l)
	}
	return map[string]any{
		"id":   e.slotID(sl) + "/deploymentStatus/" + d.ID,
		"name": d.ID,
		"type": slotType(sl, "/deploymentStatus"),
		"properties": map[string]any{
			"deploymentId":                d.ID,
			"status":                      d.BuildStatus,
			"numberOfInstancesInProgress": inProgress,
			"numberOfInstancesSuccessful": ok,
			"numberOfInstancesFailed":     failed,
			"failedInstancesLogs":         logs,
			"errors":                      errs,
		},
	}
}

// serveDeploymentStatus is GET .../deploymentStatus/{id}: 202 + Location
// (this same URL) while in progress, then 200.
func (e *Emulator) serveDeploymentStatus(q *armReq, sl *slot, id string) {
	e.mu.Lock()
	var d *deployment
	for _, x := range sl.deployments {
		if strings.EqualFold(x.ID, id) {
			d = x
		}
	}
	if d == nil {
		e.mu.Unlock()
		notFound(q.w, q.rg, slotType(sl, "/deploymentStatus"), sl.resourceName()+"/"+id)
		return
	}
	body := e.deploymentStatusJSON(sl, d)
	complete := d.Complete
	e.mu.Unlock()
	if !complete {
		q.w.Header().Set("Location", requestBase(q.r)+q.r.URL.RequestURI())
		q.w.Header().Set("Retry-After", fmt.Sprint(e.cfg.RetryAfter))
		writeJSON(q.w, http.StatusAccepted, body)
		return
	}
	writeJSON(q.w, http.StatusOK, body)
}
