package httpapi_test

import (
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/novacron/novacron/api"
	"github.com/novacron/novacron/internal/auth"
	"github.com/novacron/novacron/internal/httpapi"
)

// loadOpenAPI loads and validates the embedded document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("load api/openapi.json: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("api/openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

func openAPIRouteTable() []httpapi.RouteInfo {
	return httpapi.New(httpapi.Config{}, nil, nil, nil, slog.New(slog.DiscardHandler)).Routes()
}

// TestOpenAPIValid checks that the document loads, validates and is the
// version of the contract it claims.
func TestOpenAPIValid(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	if doc.Info == nil || doc.Info.Version != httpapi.APIVersion {
		t.Errorf("info.version is not the API version %q", httpapi.APIVersion)
	}
	if doc.Components == nil || doc.Components.SecuritySchemes["bearerAuth"] == nil {
		t.Fatal("no bearerAuth security scheme")
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"].Value; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("bearerAuth is %s/%s, want http/bearer", s.Type, s.Scheme)
	}
}

// TestOpenAPIMatchesRoutes checks both directions: every registered route is
// documented, and every documented operation is a registered route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)

	registered := map[string]httpapi.RouteInfo{}
	for _, r := range openAPIRouteTable() {
		key := r.Method + " " + r.Path
		if _, dup := registered[key]; dup {
			t.Errorf("route %s registered twice", key)
		}
		registered[key] = r
	}
	documented := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[strings.ToUpper(method)+" "+path] = op
		}
	}

	for _, key := range openAPISortedKeys(registered) {
		if documented[key] == nil {
			t.Errorf("route %s is registered but not in api/openapi.json", key)
		}
	}
	for _, key := range openAPISortedKeys(documented) {
		if _, ok := registered[key]; !ok {
			t.Errorf("api/openapi.json documents %s, which is not a registered route", key)
		}
	}
}

// TestOpenAPISecurity checks that every route that needs a credential
// requires bearerAuth, and that public routes say explicitly what they need.
func TestOpenAPISecurity(t *testing.T) {
	doc := loadOpenAPI(t)
	for _, r := range openAPIRouteTable() {
		op := openAPIOperation(doc, r.Method, r.Path)
		if op == nil {
			continue // reported by TestOpenAPIMatchesRoutes
		}
		if r.Policy == auth.Public {
			if op.Security == nil {
				t.Errorf("%s %s is public but does not override the global security", r.Method, r.Path)
			}
			continue
		}
		sec := doc.Security
		if op.Security != nil {
			sec = *op.Security
		}
		if !slices.ContainsFunc(sec, func(req openapi3.SecurityRequirement) bool {
			_, ok := req["bearerAuth"]
			return ok && len(req) == 1
		}) {
			t.Errorf("%s %s needs a credential but does not require bearerAuth", r.Method, r.Path)
		}
		if _, ok := op.Responses.Map()["401"]; !ok {
			t.Errorf("%s %s needs a credential but documents no 401", r.Method, r.Path)
		}
		if r.Policy == auth.Admin || r.Policy == auth.Operator {
			if _, ok := op.Responses.Map()["403"]; !ok {
				t.Errorf("%s %s needs a role but documents no 403", r.Method, r.Path)
			}
		}
	}
}

// TestOpenAPIWebSockets checks that WebSocket routes, and only they,
// document the upgrade (101), the subprotocol header and the browsers'
// ?token=.
func TestOpenAPIWebSockets(t *testing.T) {
	doc := loadOpenAPI(t)
	if s := doc.Components.SecuritySchemes["wsToken"]; s == nil || s.Value.Type != "apiKey" || s.Value.In != "query" || s.Value.Name != "token" {
		t.Fatal("no wsToken security scheme (apiKey in the query, named token)")
	}
	for _, r := range openAPIRouteTable() {
		op := openAPIOperation(doc, r.Method, r.Path)
		if op == nil {
			continue
		}
		name := r.Method + " " + r.Path
		_, upgrade := op.Responses.Map()["101"]
		if upgrade != r.WebSocket {
			t.Errorf("%s: documents a 101: %v; is a WebSocket: %v", name, upgrade, r.WebSocket)
		}
		if !r.WebSocket {
			continue
		}
		if op.Parameters.GetByInAndName("header", "Sec-WebSocket-Protocol") == nil {
			t.Errorf("%s: no Sec-WebSocket-Protocol header parameter", name)
		}
		if op.Security == nil || !slices.ContainsFunc(*op.Security, func(req openapi3.SecurityRequirement) bool {
			_, ok := req["wsToken"]
			return ok && len(req) == 1
		}) {
			t.Errorf("%s: does not accept wsToken", name)
		}
	}
}

// TestOpenAPIConventions checks the conventions every operation follows:
// strict request bodies, X-Request-ID on every response, Retry-After on 429,
// the Error shape on every error.
func TestOpenAPIConventions(t *testing.T) {
	doc := loadOpenAPI(t)
	errorSchema := doc.Components.Schemas["Error"]
	if errorSchema == nil {
		t.Fatal("no Error schema")
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.RequestBody != nil {
				mt := op.RequestBody.Value.Content.Get("application/json")
				raw := op.RequestBody.Value.Content.Get("application/octet-stream")
				switch {
				case raw != nil:
					// An upload: a raw stream, nothing else.
					if len(op.RequestBody.Value.Content) != 1 || raw.Schema == nil || raw.Schema.Value.Format != "binary" {
						t.Errorf("%s: an upload body must be only application/octet-stream, format binary", name)
					}
				case mt == nil || mt.Schema == nil:
					t.Errorf("%s: request body is not application/json", name)
				case mt.Schema.Value.AdditionalProperties.Has == nil || *mt.Schema.Value.AdditionalProperties.Has:
					t.Errorf("%s: request body does not forbid unknown fields (additionalProperties: false)", name)
				}
				if _, ok := op.Responses.Map()["413"]; !ok {
					t.Errorf("%s: takes a body but documents no 413", name)
				}
				if _, ok := op.Responses.Map()["400"]; !ok {
					t.Errorf("%s: takes a body but documents no 400", name)
				}
			}
			if _, ok := op.Responses.Map()["429"]; !ok {
				t.Errorf("%s: documents no 429", name)
			}
			success := false
			for code, rr := range op.Responses.Map() {
				resp := rr.Value
				if resp.Headers["X-Request-ID"] == nil {
					t.Errorf("%s %s: no X-Request-ID header", name, code)
				}
				if code == "429" && resp.Headers["Retry-After"] == nil {
					t.Errorf("%s 429: no Retry-After header", name)
				}
				if code[0] == '2' || code == "101" {
					// A 101 is a WebSocket's success (TestOpenAPIWebSockets).
					success = true
					continue
				}
				if path == "/health" && code == "503" {
					continue // the degraded health report, not an error
				}
				mt := resp.Content.Get("application/json")
				if mt == nil || mt.Schema == nil || mt.Schema.Value != errorSchema.Value {
					t.Errorf("%s %s: the body is not the Error schema", name, code)
				}
			}
			if !success {
				t.Errorf("%s: no success response", name)
			}
		}
	}
}

func openAPIOperation(doc *openapi3.T, method, path string) *openapi3.Operation {
	item := doc.Paths.Value(path)
	if item == nil {
		return nil
	}
	return item.GetOperation(method)
}

func openAPISortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
