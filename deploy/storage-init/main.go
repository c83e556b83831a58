// Command drflow-storage-init creates the buckets and containers that the locations of a
// drflow configuration name, when they are missing, and then opens every location as a worker
// does, so that a location configured with object_lock: true is checked to enforce it. The
// docker-compose stack runs it once against its storage emulators before the workers start;
// on real clouds, create buckets with your provisioning tool instead.
//
//	drflow-storage-init --config drflow.yaml [--wait 2m]
//
// Credentials come from where the worker takes them: the AWS default chain for s3,
// Application Default Credentials for gcs (none with an emulator endpoint), and for azblob the
// connection string in the environment variable the location names, or Microsoft Entra ID.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"google.golang.org/api/option"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/stores"
	"github.com/drflow/drflow/providers"
)

// Exit codes: 0 every location is ready, 1 one is not, 2 bad invocation.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// retryEvery is the pause between attempts while the storage servers start.
const retryEvery = 2 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drflow-storage-init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "drflow configuration file (required)")
	wait := fs.Duration("wait", 2*time.Minute, "how long to keep retrying while the storage servers start")
	project := fs.String("gcs-project", envOr("GOOGLE_CLOUD_PROJECT", "drflow"), "project of new GCS buckets (env GOOGLE_CLOUD_PROJECT)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *configPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: drflow-storage-init --config FILE [--wait DURATION] [--gcs-project ID]")
		return exitUsage
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "drflow-storage-init: %v\n", err)
		return exitFailed
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	failed := false
	for _, loc := range cfg.Locations {
		msg, err := ensureWithRetry(ctx, loc, *project)
		if err != nil {
			fmt.Fprintf(stderr, "drflow-storage-init: location %s: %v\n", loc.Name, err)
			failed = true
			continue
		}
		fmt.Fprintf(stdout, "%s: %s\n", loc.Name, msg)
	}
	if failed {
		return exitFailed
	}
	return exitOK
}

// ensureWithRetry retries ensure until it succeeds or ctx ends: the servers of a fresh
// docker-compose stack accept connections a few seconds after they start.
func ensureWithRetry(ctx context.Context, loc config.Location, project string) (string, error) {
	for {
		msg, err := ensure(ctx, loc, project)
		if err == nil || errors.Is(err, stores.ErrNotWORM) { // waiting cannot add Object Lock
			return msg, err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w (gave up after --wait)", err)
		case <-time.After(retryEvery):
		}
	}
}

// ensure creates loc's bucket or container if it is missing and opens the location as a worker
// would. It reports what it found or did.
func ensure(ctx context.Context, loc config.Location, project string) (string, error) {
	var (
		msg string
		err error
	)
	switch loc.Provider {
	case providers.ProviderS3:
		msg, err = ensureS3(ctx, loc)
	case providers.ProviderGCS:
		msg, err = ensureGCS(ctx, loc, project)
	case providers.ProviderAzBlob:
		msg, err = ensureAzure(ctx, loc)
	case providers.ProviderLocal:
		msg = "local directory " + loc.Path + " (created on first use)"
	default:
		return "", fmt.Errorf("provider %q is not supported", loc.Provider)
	}
	if err != nil {
		return "", err
	}
	st, err := stores.Open(ctx, loc)
	if err != nil {
		return "", err
	}
	if caps := st.Capabilities(); caps.Immutable() {
		msg += "; enforces holds and retention"
	}
	return msg, nil
}

func ensureS3(ctx context.Context, loc config.Location) (string, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(loc.Region))
	if err != nil {
		return "", fmt.Errorf("load AWS configuration: %w", err)
	}
	client := awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		if loc.Endpoint != "" {
			o.BaseEndpoint = aws.String(loc.Endpoint)
		}
		o.UsePathStyle = loc.PathStyle
	})
	if _, err := client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(loc.Bucket)}); err == nil {
		return "s3 bucket " + loc.Bucket + " exists", nil
	}
	in := &awss3.CreateBucketInput{Bucket: aws.String(loc.Bucket), ObjectLockEnabledForBucket: aws.Bool(loc.ObjectLock)}
	if loc.Region != "us-east-1" { // us-east-1 is the one region S3 refuses as a constraint
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(loc.Region)}
	}
	var owned *s3types.BucketAlreadyOwnedByYou
	if _, err := client.CreateBucket(ctx, in); err != nil && !errors.As(err, &owned) {
		return "", fmt.Errorf("create s3 bucket %s: %w", loc.Bucket, err)
	}
	if loc.ObjectLock {
		return "created s3 bucket " + loc.Bucket + " with Object Lock", nil
	}
	return "created s3 bucket " + loc.Bucket, nil
}

func ensureGCS(ctx context.Context, loc config.Location, project string) (string, error) {
	var opts []option.ClientOption
	if loc.Endpoint != "" {
		u, err := url.Parse(loc.Endpoint)
		if err != nil {
			return "", fmt.Errorf("gcs endpoint %q: %w", loc.Endpoint, err)
		}
		if strings.Trim(u.Path, "/") == "" { // an emulator's address: the JSON API lives below it
			u.Path = "/storage/v1/"
		}
		opts = append(opts, option.WithEndpoint(u.String()), option.WithoutAuthentication())
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return "", fmt.Errorf("gcs client: %w", err)
	}
	defer client.Close()
	b := client.Bucket(loc.Bucket)
	_, err = b.Attrs(ctx)
	switch {
	case err == nil:
		return "gcs bucket " + loc.Bucket + " exists", nil
	case !errors.Is(err, storage.ErrBucketNotExist):
		return "", fmt.Errorf("gcs bucket %s: %w", loc.Bucket, err)
	}
	if err := b.Create(ctx, project, nil); err != nil {
		return "", fmt.Errorf("create gcs bucket %s: %w", loc.Bucket, err)
	}
	return "created gcs bucket " + loc.Bucket, nil
}

func ensureAzure(ctx context.Context, loc config.Location) (string, error) {
	var (
		client *azblob.Client
		err    error
	)
	if loc.ConnectionStringEnv != "" {
		conn := os.Getenv(loc.ConnectionStringEnv)
		if conn == "" {
			return "", fmt.Errorf("environment variable %s (connection_string_env) is empty or unset", loc.ConnectionStringEnv)
		}
		client, err = azblob.NewClientFromConnectionString(conn, nil)
	} else {
		var cred *azidentity.DefaultAzureCredential
		if cred, err = azidentity.NewDefaultAzureCredential(nil); err == nil {
			client, err = azblob.NewClient(loc.AccountURL, cred, nil)
		}
	}
	if err != nil {
		return "", fmt.Errorf("azure client: %w", err)
	}
	_, err = client.CreateContainer(ctx, loc.Container, nil)
	switch {
	case err == nil:
		return "created azure container " + loc.Container, nil
	case bloberror.HasCode(err, bloberror.ContainerAlreadyExists):
		return "azure container " + loc.Container + " exists", nil
	default:
		return "", fmt.Errorf("create azure container %s: %w", loc.Container, err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
