package emulator

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// An Application Insights stand-in, written from Microsoft's REST contracts:
//
//   - ARM: GET .../providers/Microsoft.Insights/components/{name} (every app
//     has a component of the same name in its resource group, as the portal
//     creates), and the component's Annotations (2015-05-01: PUT creates,
//     GET lists by start/end, GET/DELETE .../Annotations/{id}).
//   - The query API: POST /v1/apps/{appId}/query {"query", "timespan"} with an
//     Entra token for https://api.applicationinsights.io (API keys are
//     retired), answering {"tables":[{"name":"PrimaryResult","columns","rows"}]}.
//
// The requests table is what the emulator's site hosts served (traffic.go).
// Its query engine understands the small part of KQL a deployment gate
// needs: `requests`, then `| where` with and-ed comparisons (==, !=, =~, <,
// <=, >, >=) over timestamp (datetime(...), ago(...)), cloud_RoleName, name,
// url, resultCode, success and duration, `| summarize` with count(),
// countif(...), percentile(col, N), avg/min/max/sum(col), and `| take N`.
// Anything else is a 400 that says so, rather than a wrong answer.

// AppInsightsAudience is the resource the query API demands tokens for.
const AppInsightsAudience = "https://api.applicationinsights.io"

type annotation struct {
	AnnotationName    string `json:"AnnotationName"`
	Category          string `json:"Category"`
	EventTime         string `json:"EventTime"`
	ID                string `json:"Id"`
	Properties        string `json:"Properties"`
	RelatedAnnotation string `json:"RelatedAnnotation"`
}

type insightsStore struct {
	mu          sync.Mutex
	annotations map[string][]annotation // component key -> annotations
}

func (e *Emulator) insights() *insightsStore {
	st := &e.appInsights
	st.mu.Lock()
	if st.annotations == nil {
		st.annotations = map[string][]annotation{}
	}
	st.mu.Unlock()
	return st
}

// appInsightsID is the component's ApplicationId (the query API's appId),
// stable for a component name.
func appInsightsID(rg, name string) string {
	h := sha256.Sum256([]byte("appinsights/" + strings.ToLower(rg) + "/" + strings.ToLower(name)))
	u, _ := uuid.FromBytes(h[:16])
	return u.String()
}

func instrumentationKey(rg, name string) string {
	h := sha256.Sum256([]byte("ikey/" + strings.ToLower(rg) + "/" + strings.ToLower(name)))
	u, _ := uuid.FromBytes(h[:16])
	return u.String()
}

// AppInsightsConnectionString is the connection string of the app's
// component, as the portal shows it (and as APPLICATIONINSIGHTS_CONNECTION_STRING
// carries it on the site).
func (e *Emulator) AppInsightsConnectionString(app string) string {
	s := e.findSite(app)
	if s == nil {
		return ""
	}
	return fmt.Sprintf("InstrumentationKey=%s;IngestionEndpoint=%s/;ApplicationId=%s",
		instrumentationKey(s.cfg.ResourceGroup, s.cfg.Name), e.armURL, appInsightsID(s.cfg.ResourceGroup, s.cfg.Name))
}

// AppInsightsID is the ARM resource id of the app's component.
func (e *Emulator) AppInsightsID(app string) string {
	s := e.findSite(app)
	if s == nil {
		return ""
	}
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Insights/components/%s", e.res.Subscription, s.cfg.ResourceGroup, s.cfg.Name)
}

// Annotations returns the annotations written to the app's component.
func (e *Emulator) Annotations(app string) []map[string]any {
	s := e.findSite(app)
	if s == nil {
		return nil
	}
	st := e.insights()
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []map[string]any
	for _, a := range st.annotations[siteKey(s.cfg.ResourceGroup, s.cfg.Name)] {
		m := map[string]any{"name": a.AnnotationName, "category": a.Category, "time": a.EventTime, "id": a.ID}
		var props map[string]any
		if json.Unmarshal([]byte(a.Properties), &props) == nil {
			m["properties"] = props
		}
		out = append(out, m)
	}
	return out
}

func (e *Emulator) findSite(app string) *site {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sites {
		if strings.EqualFold(s.cfg.Name, app) {
			return s
		}
	}
	return nil
}

func (e *Emulator) siteInGroup(rg, name string) *site {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sites[siteKey(rg, name)]
}

// serveInsights serves Microsoft.Insights/components/{name}[/Annotations[/{id}]].
func (e *Emulator) serveInsights(q *armReq) {
	if len(q.lrest) < 2 || q.lrest[0] != "components" {
		armError(q.w, http.StatusNotFound, "NotFound", "No route matches "+q.r.URL.Path)
		return
	}
	s := e.siteInGroup(q.rg, q.rest[1])
	if s == nil {
		notFound(q.w, q.rg, "Microsoft.Insights/components", q.rest[1])
		return
	}
	key := siteKey(s.cfg.ResourceGroup, s.cfg.Name)
	id := e.AppInsightsID(s.cfg.Name)
	switch {
	case len(q.lrest) == 2 && q.r.Method == http.MethodGet:
		writeJSON(q.w, http.StatusOK, map[string]any{
			"id": id, "name": s.cfg.Name, "type": "microsoft.insights/components", "kind": "web",
			"location": e.location(),
			"properties": map[string]any{
				"ApplicationId":      s.cfg.Name,
				"AppId":              appInsightsID(s.cfg.ResourceGroup, s.cfg.Name),
				"Application_Type":   "web",
				"InstrumentationKey": instrumentationKey(s.cfg.ResourceGroup, s.cfg.Name),
				"ConnectionString":   e.AppInsightsConnectionString(s.cfg.Name),
				"provisioningState":  "Succeeded",
				"IngestionMode":      "LogAnalytics",
			},
		})
	case len(q.lrest) == 3 && q.lrest[2] == "annotations" && q.r.Method == http.MethodPut:
		var a annotation
		if err := json.NewDecoder(http.MaxBytesReader(q.w, q.r.Body, 1<<20)).Decode(&a); err != nil {
			armError(q.w, http.StatusBadRequest, "BadRequest", "The annotation body is not valid JSON: "+err.Error())
			return
		}
		if a.AnnotationName == "" || a.EventTime == "" {
			armError(q.w, http.StatusBadRequest, "BadRequest", "AnnotationName and EventTime are required.")
			return
		}
		if _, err := time.Parse(time.RFC3339, a.EventTime); err != nil {
			armError(q.w, http.StatusBadRequest, "BadRequest", "EventTime is not an ISO 8601 date-time: "+a.EventTime)
			return
		}
		if a.ID == "" {
			a.ID = uuid.NewString()
		}
		if a.RelatedAnnotation == "" {
			a.RelatedAnnotation = "null"
		}
		st := e.insights()
		st.mu.Lock()
		for _, old := range st.annotations[key] {
			if old.ID == a.ID {
				st.mu.Unlock()
				armError(q.w, http.StatusConflict, "Conflict", "An annotation with Id "+a.ID+" already exists.")
				return
			}
		}
		st.annotations[key] = append(st.annotations[key], a)
		st.mu.Unlock()
		e.logf("appinsights: annotation %q on %s", a.AnnotationName, s.cfg.Name)
		writeJSON(q.w, http.StatusOK, []annotation{a})
	case len(q.lrest) == 3 && q.lrest[2] == "annotations" && q.r.Method == http.MethodGet:
		start, err1 := time.Parse(time.RFC3339, q.r.URL.Query().Get("start"))
		end, err2 := time.Parse(time.RFC3339, q.r.URL.Query().Get("end"))
		if err1 != nil || err2 != nil {
			armError(q.w, http.StatusBadRequest, "BadRequest", "start and end are required ISO 8601 date-times.")
			return
		}
		st := e.insights()
		st.mu.Lock()
		out := []annotation{}
		for _, a := range st.annotations[key] {
			t, _ := time.Parse(time.RFC3339, a.EventTime)
			if !t.Before(start) && !t.After(end) {
				out = append(out, a)
			}
		}
		st.mu.Unlock()
		writeJSON(q.w, http.StatusOK, map[string]any{"value": out})
	case len(q.lrest) == 4 && q.lrest[2] == "annotations" && (q.r.Method == http.MethodGet || q.r.Method == http.MethodDelete):
		st := e.insights()
		st.mu.Lock()
		defer st.mu.Unlock()
		for i, a := range st.annotations[key] {
			if a.ID == q.rest[3] {
				if q.r.Method == http.MethodDelete {
					st.annotations[key] = append(st.annotations[key][:i], st.annotations[key][i+1:]...)
					writeJSON(q.w, http.StatusOK, map[string]any{})
					return
				}
				writeJSON(q.w, http.StatusOK, []annotation{a})
				return
			}
		}
		armError(q.w, http.StatusNotFound, "NotFound", "Annotation "+q.rest[3]+" was not found.")
	default:
		e.methodNotAllowed(q)
	}
}

func (e *Emulator) location() string {
	if e.res.Location != "" {
		return e.res.Location
	}
	return "westeurope"
}

// queryAPIHandler serves POST/GET /v1/apps/{appId}/query.
func (e *Emulator) queryAPIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, msg := e.checkQueryToken(r); code != "" {
			w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="`+e.iss.host+"/"+e.iss.tenant+`"`)
			queryError(w, http.StatusUnauthorized, code, msg)
			return
		}
		rest, _ := strings.CutPrefix(r.URL.Path, "/v1/apps/")
		appID, op, _ := strings.Cut(rest, "/")
		if op != "query" {
			queryError(w, http.StatusNotFound, "PathNotFoundError", "The requested path does not exist: "+r.URL.Path)
			return
		}
		var s *site
		e.mu.Lock()
		for _, x := range e.sites {
			if appInsightsID(x.cfg.ResourceGroup, x.cfg.Name) == strings.ToLower(appID) {
				s = x
			}
		}
		e.mu.Unlock()
		if s == nil {
			queryError(w, http.StatusNotFound, "ApplicationNotFoundError", "The application could not be found: "+appID)
			return
		}
		var body struct {
			Query    string `json:"query"`
			Timespan string `json:"timespan"`
		}
		switch r.Method {
		case http.MethodGet:
			body.Query, body.Timespan = r.URL.Query().Get("query"), r.URL.Query().Get("timespan")
		case http.MethodPost:
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
				queryError(w, http.StatusBadRequest, "BadArgumentError", "The request body is not valid JSON.")
				return
			}
		default:
			queryError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "Use GET or POST.")
			return
		}
		now := time.Now().UTC()
		from, to, err := parseTimespan(body.Timespan, now)
		if err != nil {
			queryError(w, http.StatusBadRequest, "BadArgumentError", err.Error())
			return
		}
		var rows []servedRequest
		for _, rec := range e.telemetryLog().snapshot() {
			if rec.Component == siteKey(s.cfg.ResourceGroup, s.cfg.Name) && !rec.Time.Before(from) && rec.Time.Before(to) {
				rows = append(rows, rec)
			}
		}
		table, err := runKQL(body.Query, rows, now)
		if err != nil {
			queryError(w, http.StatusBadRequest, "BadArgumentError", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"tables": []any{table}})
	})
}

func queryError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func (e *Emulator) checkQueryToken(r *http.Request) (string, string) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "AuthorizationRequiredError", "Valid authentication was not provided (an Entra token for " + AppInsightsAudience + "; API keys are not accepted)."
	}
	var claims jwt.MapClaims
	if _, err := jwt.ParseWithClaims(strings.TrimSpace(tok), &claims, func(*jwt.Token) (any, error) {
		return &e.iss.key.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired()); err != nil {
		return "InvalidTokenError", "The provided authentication is not valid: " + err.Error()
	}
	aud, _ := claims["aud"].(string)
	if strings.TrimSuffix(aud, "/") != AppInsightsAudience {
		return "InvalidTokenError", fmt.Sprintf("The token's audience %q is not %s.", aud, AppInsightsAudience)
	}
	return "", ""
}

// parseTimespan reads the query API's timespan: an ISO 8601 duration ending
// now ("PT5M"), or "start/end", or "start/duration". Empty means 1 day.
func parseTimespan(ts string, now time.Time) (time.Time, time.Time, error) {
	if ts == "" {
		return now.Add(-24 * time.Hour), now.Add(time.Second), nil
	}
	a, b, two := strings.Cut(ts, "/")
	if !two {
		d, err := isoDuration(a)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		return now.Add(-d), now.Add(time.Second), nil
	}
	from, err := time.Parse(time.RFC3339, a)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("timespan start %q is not an ISO 8601 date-time", a)
	}
	if to, err := time.Parse(time.RFC3339, b); err == nil {
		return from, to, nil
	}
	d, err := isoDuration(b)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	return from, from.Add(d), nil
}

var isoDur = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

func isoDuration(s string) (time.Duration, error) {
	m := isoDur.FindStringSubmatch(strings.ToUpper(s))
	if m == nil || s == "P" || s == "PT" {
		return 0, fmt.Errorf("timespan %q is not an ISO 8601 duration such as PT5M", s)
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
		if m[i+1] != "" {
			n, _ := strconv.Atoi(m[i+1])
			d += time.Duration(n) * unit
		}
	}
	if m[4] != "" {
		f, _ := strconv.ParseFloat(m[4], 64)
		d += time.Duration(f * float64(time.Second))
	}
	return d, nil
}

// ---- the KQL subset ----

type kqlColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type kqlTable struct {
	Name    string      `json:"name"`
	Columns []kqlColumn `json:"columns"`
	Rows    [][]any     `json:"rows"`
}

// requestColumns are the requests table's columns the engine knows, with
// their KQL types.
var requestColumns = []kqlColumn{
	{"timestamp", "datetime"}, {"name", "string"}, {"url", "string"}, {"success", "bool"},
	{"resultCode", "string"}, {"duration", "real"}, {"cloud_RoleName", "string"}, {"cloud_RoleInstance", "string"},
}

func recordValue(r servedRequest, col string) (any, bool) {
	switch col {
	case "timestamp":
		return r.Time, true
	case "name":
		return "GET " + r.Path, true
	case "url":
		return r.Path, true
	case "success":
		return r.Status < 400, true
	case "resultCode":
		return strconv.Itoa(r.Status), true
	case "duration":
		return float64(r.Duration) / float64(time.Millisecond), true
	case "cloud_RoleName":
		return r.Role, true
	case "cloud_RoleInstance":
		return r.Role + "-0", true
	}
	return nil, false
}

func runKQL(query string, rows []servedRequest, now time.Time) (*kqlTable, error) {
	stages := splitPipes(query)
	if len(stages) == 0 || strings.TrimSpace(stages[0]) != "requests" {
		return nil, fmt.Errorf("the emulator's query engine reads only the requests table; the query must start with 'requests'")
	}
	for _, st := range stages[1:] {
		st = strings.TrimSpace(st)
		op, arg, _ := strings.Cut(st, " ")
		arg = strings.TrimSpace(arg)
		switch op {
		case "where":
			pred, err := parsePredicate(arg, now)
			if err != nil {
				return nil, err
			}
			var kept []servedRequest
			for _, r := range rows {
				ok, err := pred(r)
				if err != nil {
					return nil, err
				}
				if ok {
					kept = append(kept, r)
				}
			}
			rows = kept
		case "take", "limit":
			n, err := strconv.Atoi(arg)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%s needs a row count: %q", op, arg)
			}
			rows = rows[:min(n, len(rows))]
		case "summarize":
			return summarize(arg, rows, now)
		default:
			return nil, fmt.Errorf("the emulator's query engine does not support the %q operator (only where, summarize, take)", op)
		}
	}
	t := &kqlTable{Name: "PrimaryResult", Columns: requestColumns, Rows: [][]any{}}
	for _, r := range rows {
		var row []any
		for _, c := range requestColumns {
			v, _ := recordValue(r, c.Name)
			if tm, ok := v.(time.Time); ok {
				v = tm.Format(time.RFC3339Nano)
			}
			row = append(row, v)
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}

// splitPipes splits on | outside quotes.
func splitPipes(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	for _, c := range s {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '|':
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(c)
	}
	if strings.TrimSpace(cur.String()) != "" || len(out) > 0 {
		out = append(out, cur.String())
	}
	return out
}

// splitTop splits s on sep (a word like " and " or ",") outside quotes and
// parentheses.
func splitTop(s, sep string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && strings.HasPrefix(s[i:], sep):
			out = append(out, s[start:i])
			start = i + len(sep)
			i += len(sep) - 1
		}
	}
	return append(out, s[start:])
}

var comparison = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(==|!=|=~|<=|>=|<|>)\s*(.+?)\s*$`)

func parsePredicate(expr string, now time.Time) (func(servedRequest) (bool, error), error) {
	var preds []func(servedRequest) (bool, error)
	for _, part := range splitTop(expr, " and ") {
		part = strings.TrimSpace(part)
		for strings.HasPrefix(part, "(") && strings.HasSuffix(part, ")") {
			part = strings.TrimSpace(part[1 : len(part)-1])
		}
		m := comparison.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("the emulator's query engine cannot read the condition %q (use column op value, joined with 'and')", part)
		}
		col, op := m[1], m[2]
		if _, ok := recordValue(servedRequest{}, col); !ok {
			return nil, fmt.Errorf("'where' operator: failed to resolve column or scalar expression named '%s'", col)
		}
		lit, err := parseLiteral(m[3], now)
		if err != nil {
			return nil, err
		}
		preds = append(preds, func(r servedRequest) (bool, error) {
			v, _ := recordValue(r, col)
			return compare(v, op, lit)
		})
	}
	return func(r servedRequest) (bool, error) {
		for _, p := range preds {
			ok, err := p(r)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	}, nil
}

var callLit = regexp.MustCompile(`^(datetime|ago|todatetime)\((.*)\)$`)

func parseLiteral(s string, now time.Time) (any, error) {
	s = strings.TrimSpace(s)
	switch {
	case len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0]:
		return s[1 : len(s)-1], nil
	case s == "true" || s == "false":
		return s == "true", nil
	}
	if m := callLit.FindStringSubmatch(s); m != nil {
		arg := strings.Trim(strings.TrimSpace(m[2]), `"'`)
		if m[1] == "ago" {
			d, err := kqlTimespan(arg)
			if err != nil {
				return nil, err
			}
			return now.Add(-d), nil
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, arg); err == nil {
				return t, nil
			}
		}
		return nil, fmt.Errorf("cannot read the datetime %q", arg)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f, nil
	}
	if d, err := kqlTimespan(s); err == nil {
		return float64(d) / float64(time.Millisecond), nil
	}
	return nil, fmt.Errorf("the emulator's query engine cannot read the value %q", s)
}

// kqlTimespan reads 5m, 30s, 1h, 2d, 250ms.
func kqlTimespan(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"ms", time.Millisecond}, {"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil {
				break
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("cannot read the timespan %q (e.g. 5m, 30s)", s)
}

func compare(v any, op string, lit any) (bool, error) {
	switch a := v.(type) {
	case string:
		b, ok := lit.(string)
		if !ok {
			b = fmt.Sprint(lit)
		}
		switch op {
		case "==":
			return a == b, nil
		case "!=":
			return a != b, nil
		case "=~":
			return strings.EqualFold(a, b), nil
		}
	case bool:
		b, ok := lit.(bool)
		if !ok {
			return false, fmt.Errorf("cannot compare a bool with %v", lit)
		}
		switch op {
		case "==":
			return a == b, nil
		case "!=":
			return a != b, nil
		}
	case float64:
		b, ok := lit.(float64)
		if !ok {
			return false, fmt.Errorf("cannot compare a number with %v", lit)
		}
		return cmpOrdered(a, b, op)
	case time.Time:
		b, ok := lit.(time.Time)
		if !ok {
			return false, fmt.Errorf("cannot compare timestamp with %v (use datetime(...) or ago(...))", lit)
		}
		return cmpOrdered(a.UnixNano(), b.UnixNano(), op)
	}
	return false, fmt.Errorf("operator %s is not supported for that column", op)
}

func cmpOrdered[T int64 | float64](a, b T, op string) (bool, error) {
	switch op {
	case "==":
		return a == b, nil
	case "!=":
		return a != b, nil
	case "<":
		return a < b, nil
	case "<=":
		return a <= b, nil
	case ">":
		return a > b, nil
	case ">=":
		return a >= b, nil
	}
	return false, fmt.Errorf("operator %s is not supported for that column", op)
}

var aggCall = regexp.MustCompile(`^(count|countif|percentile|avg|min|max|sum)\((.*)\)$`)

func summarize(arg string, rows []servedRequest, now time.Time) (*kqlTable, error) {
	if strings.Contains(" "+arg+" ", " by ") {
		return nil, fmt.Errorf("the emulator's query engine does not support 'summarize ... by'")
	}
	t := &kqlTable{Name: "PrimaryResult"}
	var row []any
	for _, item := range splitTop(arg, ",") {
		item = strings.TrimSpace(item)
		name := ""
		if n, expr, ok := strings.Cut(item, "="); ok && !strings.ContainsAny(n, "()") {
			name, item = strings.TrimSpace(n), strings.TrimSpace(expr)
		}
		m := aggCall.FindStringSubmatch(item)
		if m == nil {
			return nil, fmt.Errorf("the emulator's query engine cannot read the aggregation %q (count, countif, percentile, avg, min, max, sum)", item)
		}
		fn, inner := m[1], strings.TrimSpace(m[2])
		switch fn {
		case "count":
			t.Columns = append(t.Columns, kqlColumn{cmpName(name, "count_"), "long"})
			row = append(row, len(rows))
		case "countif":
			pred, err := parsePredicate(inner, now)
			if err != nil {
				return nil, err
			}
			n := 0
			for _, r := range rows {
				if ok, _ := pred(r); ok {
					n++
				}
			}
			t.Columns = append(t.Columns, kqlColumn{cmpName(name, "countif_"), "long"})
			row = append(row, n)
		default:
			parts := splitTop(inner, ",")
			col := strings.TrimSpace(parts[0])
			if _, ok := recordValue(servedRequest{}, col); !ok || col != "duration" {
				return nil, fmt.Errorf("%s() over %q: the emulator's query engine aggregates only duration", fn, col)
			}
			vals := make([]float64, 0, len(rows))
			for _, r := range rows {
				v, _ := recordValue(r, col)
				vals = append(vals, v.(float64))
			}
			def := fn + "_" + col
			var val any
			switch fn {
			case "percentile":
				if len(parts) != 2 {
					return nil, fmt.Errorf("percentile() needs a column and a percentage")
				}
				p, err := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
				if err != nil || p < 0 || p > 100 {
					return nil, fmt.Errorf("percentile(): %q is not a percentage", parts[1])
				}
				def = fmt.Sprintf("percentile_%s_%s", col, strings.TrimSpace(parts[1]))
				val = percentileOf(vals, p)
			case "avg":
				val = aggregate(vals, func(a []float64) float64 {
					s := 0.0
					for _, x := range a {
						s += x
					}
					return s / float64(len(a))
				})
			case "min":
				val = aggregate(vals, func(a []float64) float64 { return sortedCopy(a)[0] })
			case "max":
				val = aggregate(vals, func(a []float64) float64 { s := sortedCopy(a); return s[len(s)-1] })
			case "sum":
				s := 0.0
				for _, x := range vals {
					s += x
				}
				val = s
			}
			t.Columns = append(t.Columns, kqlColumn{cmpName(name, def), "real"})
			row = append(row, val)
		}
	}
	t.Rows = [][]any{row}
	return t, nil
}

func cmpName(name, def string) string {
	if name != "" {
		return name
	}
	return def
}

func sortedCopy(a []float64) []float64 {
	s := append([]float64(nil), a...)
	sort.Float64s(s)
	return s
}

// aggregate is nil (KQL's null) over no rows.
func aggregate(vals []float64, f func([]float64) float64) any {
	if len(vals) == 0 {
		return nil
	}
	return f(vals)
}

// percentileOf is the nearest-rank percentile (KQL's percentile() is an
// estimate; nearest rank is exact on the emulator's small sets).
func percentileOf(vals []float64, p float64) any {
	if len(vals) == 0 {
		return nil
	}
	s := sortedCopy(vals)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}
