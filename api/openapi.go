package api

import _ "embed"

// OpenAPI is the OpenAPI 3.0.3 document of the REST API, as the server
// serves it at GET /api/openapi.json. It describes every route of the route
// table with its request and response bodies, query parameters, error
// answers and security; a test of internal/httpapi checks it against the
// routes the server registers.
//
//go:embed openapi.json
var OpenAPI []byte
