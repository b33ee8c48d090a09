// Package web is Ferry's dashboard: plain HTML, CSS and JavaScript embedded
// in the binary and served at / on the HTTP listener. There is no build
// step, so building Ferry needs no Node.js.
//
// The pages hold no server-side logic. Their script talks to the same
// native API every client uses (Connect's JSON protocol: POST
// /ferry.v1.<Service>/<Method>), to /readyz for health and to /metrics for
// live rates, latencies and subscription totals, so the dashboard can do
// nothing a curl user cannot.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Assets are the dashboard's files: index.html, app.js, style.css.
func Assets() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder is fixed at build time
	}
	return sub
}

// Handler serves the dashboard. Mount it at "/" without a method in the
// pattern: the more specific patterns of the API and /metrics win, and a
// "GET /" pattern would conflict with the API's method-less prefixes.
func Handler() http.Handler {
	files := http.FileServerFS(Assets())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// Not the dashboard's: most likely a mistyped API path, which
			// Connect clients read best as not found (unimplemented).
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		// Scripts and styles only from this origin (no inline script), and
		// no framing by other sites: the pages can delete topics.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		// The assets change with the binary: revalidate instead of caching
		// blindly, so an upgraded broker never runs an old script.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
