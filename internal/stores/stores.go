// Package stores opens the providers.Store of a configured location, taking credentials from
// the environment of the process (never from the configuration file), and refuses a location
// that is configured as WORM storage but does not enforce holds and retention.
package stores

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/providers/azblob"
	"github.com/drflow/drflow/providers/gcs"
	"github.com/drflow/drflow/providers/local"
	"github.com/drflow/drflow/providers/s3"
)

// ErrNotWORM means a location configured with object_lock: true does not enforce legal holds
// and retention, so restore points written there could be deleted.
var ErrNotWORM = errors.New("location is configured as WORM (object_lock: true) but does not enforce holds and retention")

// Open opens the store for loc. Credentials come from the standard sources of each SDK:
// the AWS default chain for s3, Application Default Credentials (or STORAGE_EMULATOR_HOST)
// for gcs, and for azblob the connection string in the environment variable the location
// names, or Microsoft Entra ID (azidentity's default chain) with account_url.
func Open(ctx context.Context, loc config.Location) (providers.Store, error) {
	st, err := open(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("open location %s: %w", loc.Name, err)
	}
	if caps := st.Capabilities(); loc.ObjectLock && !caps.Immutable() {
		return nil, fmt.Errorf("open location %s: %w: %s", loc.Name, ErrNotWORM, caps.Note)
	}
	return st, nil
}

func open(ctx context.Context, loc config.Location) (providers.Store, error) {
	ref := loc.Ref()
	switch loc.Provider {
	case providers.ProviderLocal:
		// A local store is confined by its directory, so a configured prefix is a subdirectory.
		ref.Prefix = ""
		root := filepath.Join(loc.Path, filepath.FromSlash(loc.Prefix))
		ref.Bucket = root
		return local.Open(local.Options{Root: root, Location: ref})
	case providers.ProviderS3:
		return s3.Open(ctx, s3.Options{
			Bucket:    loc.Bucket,
			Prefix:    loc.Prefix,
			Region:    loc.Region,
			Endpoint:  loc.Endpoint,
			PathStyle: loc.PathStyle,
			Location:  ref,
		})
	case providers.ProviderGCS:
		endpoint, err := gcsEndpoint(loc.Endpoint)
		if err != nil {
			return nil, err
		}
		return gcs.Open(ctx, gcs.Options{Bucket: loc.Bucket, Prefix: loc.Prefix, Endpoint: endpoint, Location: ref})
	case providers.ProviderAzBlob:
		opts := azblob.Options{Container: loc.Container, Prefix: loc.Prefix, Location: ref}
		if loc.ConnectionStringEnv != "" {
			opts.ConnectionString = os.Getenv(loc.ConnectionStringEnv)
			if opts.ConnectionString == "" {
				return nil, fmt.Errorf("%w: environment variable %s (connection_string_env) is empty or unset",
					providers.ErrInvalidArgument, loc.ConnectionStringEnv)
			}
		} else {
			cred, err := azidentity.NewDefaultAzureCredential(nil)
			if err != nil {
				return nil, fmt.Errorf("azure credentials for %s: %w", loc.AccountURL, err)
			}
			opts.ServiceURL, opts.Credential = loc.AccountURL, cred
		}
		return azblob.Open(ctx, opts)
	default:
		return nil, fmt.Errorf("%w: provider %q", providers.ErrNotSupported, loc.Provider)
	}
}

// gcsEndpoint turns a configured emulator address (http://host:port) into the JSON API base
// the SDK expects; an endpoint that already names a path is used as it is.
func gcsEndpoint(endpoint string) (string, error) {
	if endpoint == "" {
		return "", nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("%w: gcs endpoint %q: %v", providers.ErrInvalidArgument, endpoint, err)
	}
	if strings.Trim(u.Path, "/") == "" {
		u.Path = "/storage/v1/"
	}
	return u.String(), nil
}
