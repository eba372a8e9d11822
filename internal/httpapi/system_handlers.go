package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/novacron/novacron"
)

type healthBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func (a *API) health(r *http.Request) (any, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		a.log.Warn("health: database unreachable", "err", err)
		return withStatus(http.StatusServiceUnavailable, healthBody{Status: "degraded",
			Checks: map[string]string{"database": "unreachable"}}), nil
	}
	return healthBody{Status: "ok", Checks: map[string]string{"database": "ok"}}, nil
}

type infoBody struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	APIVersion string   `json:"api_version"`
	Drivers    []string `json:"drivers"`
	Features   []string `json:"features"`
}

func (a *API) info(*http.Request) (any, error) {
	b := infoBody{Name: "novacron", Version: a.cfg.Version, APIVersion: APIVersion,
		Drivers: a.cfg.Drivers, Features: a.cfg.Features}
	if b.Drivers == nil {
		b.Drivers = []string{}
	}
	if b.Features == nil {
		b.Features = []string{}
	}
	return b, nil
}

func (a *API) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	if len(a.cfg.OpenAPI) == 0 {
		writeError(w, r, novacron.Errorf(novacron.ENotFound, "no OpenAPI document"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(a.cfg.OpenAPI)
}
