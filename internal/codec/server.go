package codec

import (
	"net/http"
	"slices"
	"strings"

	"go.temporal.io/sdk/converter"
)

// maxRequestBody bounds what one encode or decode request may send: Temporal refuses payloads
// over 2 MiB, and a page of the Web UI decodes a few dozen at most.
const maxRequestBody = 32 << 20

// ServerOptions configure Handler.
type ServerOptions struct {
	// UIOrigins are the Web UI's origins (scheme://host:port, e.g. both http://localhost:8233
	// and http://127.0.0.1:8233), the only ones whose browser requests are allowed (CORS).
	// None allows no browser at all, only the CLI.
	UIOrigins []string
	// Namespaces are those served; empty serves any.
	Namespaces []string
}

// Handler serves the Temporal remote codec protocol for the Web UI and the temporal CLI
// (`--codec-endpoint`): POST {/namespace}/encode and {/namespace}/decode with a JSON Payloads
// body, the namespace also accepted as the X-Namespace header. GET /healthz answers ok.
func Handler(c *Codec, opts ServerOptions) http.Handler {
	codec := converter.NewPayloadCodecHTTPHandler(c)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		origin := r.Header.Get("Origin")
		if origin != "" {
			if !slices.Contains(opts.UIOrigins, origin) {
				http.Error(w, "origin "+origin+" is not the configured Web UI origin", http.StatusForbidden)
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
			h.Set("Access-Control-Max-Age", "600")
			h.Add("Vary", "Origin")
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		ns, op, ok := route(r)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if len(opts.Namespaces) > 0 && ns != "" && !slices.Contains(opts.Namespaces, ns) {
			http.Error(w, "namespace "+ns+" is not served by this codec server", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST, OPTIONS")
			http.Error(w, op+" takes POST", http.StatusMethodNotAllowed)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		codec.ServeHTTP(w, r)
	})
}

// route splits /encode, /decode, /NS/encode and /NS/decode; the X-Namespace header names the
// namespace when the path does not.
func route(r *http.Request) (ns, op string, ok bool) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch len(parts) {
	case 1:
		ns, op = r.Header.Get("X-Namespace"), parts[0]
	case 2:
		ns, op = parts[0], parts[1]
	default:
		return "", "", false
	}
	return ns, op, op == "encode" || op == "decode"
}
