package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/drflow/drflow/internal/codec"
	"github.com/drflow/drflow/internal/config"
)

// codecKeyFile resolves the keyring a codec-key command works on: --file, else the
// configuration's (or the environment's) payload keyring.
func codecKeyFile(file, cfgPath string) (string, error) {
	if file != "" {
		return file, nil
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "", fmt.Errorf("%w: no --file, and %v", errUsage, err)
	}
	if f := cfg.PayloadKeyFile(); f != "" {
		return f, nil
	}
	return "", fmt.Errorf("%w: no --file, and %s has no codec.key_file (nor is %s set)", errUsage, cfgPath, config.EnvCodecKeyFile)
}

func codecKeyCreateCmd(ctx context.Context, e *env, args []string) error {
	return codecKeyCmd(e, args, "create", "Creates a payload keyring (mode 0600) with one AES-256 key, refusing to overwrite one\n(with --if-missing, an existing keyring is kept and reported).",
		codec.CreateKeyring)
}

func codecKeyRotateCmd(ctx context.Context, e *env, args []string) error {
	return codecKeyCmd(e, args, "rotate", "Adds a fresh key to the payload keyring and makes it the one new payloads are sealed\nunder; payloads sealed under the older keys stay readable while those keys stay in the file.\nRestart the workers, the codec server and the schedules' clients to pick it up.",
		codec.RotateKeyring)
}

func codecKeyCmd(e *env, args []string, verb, about string, do func(string, time.Time) (*codec.Keyring, error)) error {
	fs := newFlags(e, "codec-key "+verb)
	file := fs.String("file", "", "the keyring file (default: the configuration's codec.key_file)")
	cfgPath := fs.String("config", defaultConf, "configuration file")
	var ifMissing *bool
	if verb == "create" {
		ifMissing = fs.Bool("if-missing", false, "keep an existing keyring instead of failing (for provisioning that runs more than once)")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drflow codec-key %s [--file PATH | --config FILE]\n\n%s\n\n", verb, about)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path, err := codecKeyFile(*file, *cfgPath)
	if err != nil {
		return err
	}
	if ifMissing != nil && *ifMissing {
		do = codec.LoadOrCreateKeyring
	}
	k, err := do(path, time.Now())
	if err != nil {
		return err
	}
	ids := make([]string, len(k.Keys))
	for i, key := range k.Keys {
		ids[i] = key.ID
	}
	fmt.Fprintf(e.stdout, "payload keyring %s: active key %s (keys: %s)\n", path, k.Active, strings.Join(ids, ", "))
	return nil
}

func codecServerCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "codec-server")
	listen := fs.String("listen", "127.0.0.1:8081", "host:port to serve on")
	uiOrigin := fs.String("ui-origin", "http://localhost:8233", "the Temporal Web UI's origin, the only browser origin allowed (CORS); several separated by commas")
	cfgPath := fs.String("config", defaultConf, "configuration file naming the payload keyring (codec.key_file)")
	file := fs.String("file", "", "the payload keyring (default: the configuration's codec.key_file)")
	namespace := fs.String("namespace", envOr("TEMPORAL_NAMESPACE", defaultNamespace), "the Temporal namespace served")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: drflow codec-server [--listen HOST:PORT] [--ui-origin URL] [--config FILE | --file KEYRING]

Serves the Temporal remote codec protocol (POST /NAMESPACE/encode and /NAMESPACE/decode) with
the deployment's payload keyring, so that the Web UI (started with --ui-codec-endpoint
http://HOST:PORT) and the temporal CLI (--codec-endpoint) show drflow's inputs and results
decoded. Only the --ui-origin browser origin is allowed. Keep it on a trusted network: it
decodes for anyone who can reach it.`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path, err := codecKeyFile(*file, *cfgPath)
	if err != nil {
		return err
	}
	c, err := codec.Open(path)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	srv := &http.Server{
		Handler:           codec.Handler(c, codec.ServerOptions{UIOrigins: strings.Split(*uiOrigin, ","), Namespaces: []string{*namespace}}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Fprintf(e.stdout, "codec server on http://%s for namespace %s (Web UI origin %s, active key %s)\n", ln.Addr(), *namespace, *uiOrigin, c.ActiveKey())
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(ln) }()
	select {
	case err := <-errCh:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return err
		}
		if err := <-errCh; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
