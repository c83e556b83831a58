package deploy

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/drflow/drflow/internal/config"
	"github.com/drflow/drflow/internal/testservers"
	"github.com/drflow/drflow/providers"
	"github.com/drflow/drflow/workflows"
)

// composeFile is the part of the Compose format docker-compose.yml uses. Unknown service keys
// fail the decode, so a misspelt key (depend_on) cannot be silently ignored by the test.
type composeFile struct {
	Services   map[string]service `yaml:"services"`
	Volumes    map[string]any     `yaml:"volumes"`
	Extensions map[string]any     `yaml:",inline"` // x-* anchors only
}

type service struct {
	Image       string                `yaml:"image"`
	Build       *build                `yaml:"build"`
	Restart     string                `yaml:"restart"`
	DependsOn   map[string]dependency `yaml:"depends_on"`
	Environment map[string]string     `yaml:"environment"`
	Entrypoint  []string              `yaml:"entrypoint"`
	Command     []string              `yaml:"command"`
	WorkingDir  string                `yaml:"working_dir"`
	Ports       []string              `yaml:"ports"`
	Volumes     []string              `yaml:"volumes"`
	Healthcheck map[string]any        `yaml:"healthcheck"`
	Profiles    []string              `yaml:"profiles"`
}

type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
	Target     string `yaml:"target"`
}

type dependency struct {
	Condition string `yaml:"condition"`
}

// worker is a drflow-worker service.
type worker struct {
	name    string
	svc     service
	region  string
	control bool
}

// Well-known development credentials that docker-compose.yml may inline, and why that is safe:
// they are published (Azurite's account key is in its README and Microsoft's docs) or chosen
// here for throwaway containers, and they open nothing but this stack's emulators and its
// PostgreSQL, whose ports are published on 127.0.0.1 only (checked below).
var devCredentials = map[string]string{
	"drflow":            "MinIO root user of the S3 emulator",
	"drflow-dev-secret": "MinIO root password of the S3 emulator",
	"temporal":          "password of the PostgreSQL container that only Temporal uses",
}

// secretName matches environment variables that carry credentials.
var secretName = regexp.MustCompile(`(?i)password|passwd|pwd|secret|token|key|connection_string|credential`)

func TestComposeFile(t *testing.T) {
	root := testservers.RepoRoot(t)
	f := loadCompose(t, root)
	require.NotEmpty(t, f.Services)

	for key := range f.Extensions {
		assert.True(t, strings.HasPrefix(key, "x-"), "top-level key %q: only services, volumes and x-* extensions are expected", key)
	}
	usedVolumes := map[string]bool{}
	hostPorts := map[string]string{}
	for name, s := range f.Services {
		t.Run(name, func(t *testing.T) {
			switch {
			case s.Image != "" && s.Build != nil:
				t.Errorf("has both image and build; use one")
			case s.Image != "":
				assertPinned(t, s.Image)
			case s.Build != nil:
				assertBuild(t, root, s.Build)
			default:
				t.Errorf("has neither image nor build")
			}
			for dep, d := range s.DependsOn {
				target, ok := f.Services[dep]
				if !assert.True(t, ok, "depends on unknown service %q", dep) {
					continue
				}
				switch d.Condition {
				case "service_started":
				case "service_healthy":
					assert.NotEmpty(t, target.Healthcheck, "waits for %s to be healthy, which has no healthcheck", dep)
				case "service_completed_successfully":
					assert.Contains(t, []string{"", "no"}, target.Restart, "waits for %s to complete, which restarts", dep)
				default:
					t.Errorf("depends on %s with condition %q (want service_started, service_healthy or service_completed_successfully)", dep, d.Condition)
				}
			}
			for _, p := range s.Ports {
				host := assertPort(t, p)
				if other, dup := hostPorts[host]; dup {
					t.Errorf("port %s is also published by %s", host, other)
				}
				hostPorts[host] = name
			}
			for _, v := range s.Volumes {
				src, _, _ := strings.Cut(v, ":")
				if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
					assert.FileExists(t, filepath.Join(root, src), "bind mount %s", v)
					continue
				}
				_, declared := f.Volumes[src]
				assert.True(t, declared, "named volume %q is not declared under volumes", src)
				usedVolumes[src] = true
			}
			assertNoInlinedSecrets(t, s)
		})
	}
	for v := range f.Volumes {
		assert.True(t, usedVolumes[v], "volume %s is declared but no service uses it", v)
	}

	// The two Temporal images come from the same release.
	server, admin := f.Services["temporal"].Image, f.Services["temporal-schema"].Image
	assert.Equal(t, tag(server), tag(admin), "temporalio/server and temporalio/admin-tools versions")
	assert.Equal(t, admin, f.Services["temporal-setup"].Image)
}

func TestComposeWorkers(t *testing.T) {
	root := testservers.RepoRoot(t)
	f := loadCompose(t, root)
	cfg := loadMountedConfig(t, root, f)

	var workers []worker
	for name, s := range f.Services {
		if w, ok := asWorker(t, name, s); ok {
			workers = append(workers, w)
		}
	}
	require.NotEmpty(t, workers, "no drflow-worker service")

	served := map[string]string{}
	control := 0
	for _, w := range workers {
		_, known := cfg.JurisdictionOf(w.region)
		require.True(t, known, "%s: --region %s is not a region of the configuration (%v)", w.name, w.region, cfg.Regions())
		if other, dup := served[w.region]; dup {
			t.Errorf("%s and %s both serve %s; this stack has one worker per region", w.name, other, w.region)
		}
		served[w.region] = w.name
		if w.control {
			control++
		}
		assertTemporalAddress(t, f, w.name, w.svc)

		// Credentials: those of its region's locations and of the replica locations of the
		// datasets homed in its region (it writes their copies, as activities.New opens
		// them), and none of any other location's.
		targets := map[string]bool{}
		for _, ds := range cfg.Datasets {
			if home, ok := cfg.Location(ds.Primary); ok && home.Region == w.region {
				for _, r := range ds.Replicas {
					targets[r] = true
				}
			}
		}
		mine, others := map[string]bool{}, map[string]bool{}
		for _, loc := range cfg.Locations {
			for _, v := range credentialVars(loc) {
				if loc.Region == w.region || targets[loc.Name] {
					mine[v] = true
				} else {
					others[v] = true
				}
			}
		}
		for v := range mine {
			assert.NotEmpty(t, w.svc.Environment[v], "%s serves a location that needs %s", w.name, v)
		}
		for v := range others {
			if !mine[v] {
				assert.NotContains(t, w.svc.Environment, v, "%s holds %s, a credential of another region", w.name, v)
			}
		}
	}
	assert.Equal(t, 1, control, "exactly one worker polls the control queue (--control)")
	for _, loc := range cfg.Locations {
		assert.Contains(t, served, loc.Region, "location %s: no worker serves region %s", loc.Name, loc.Region)
	}

	// The bootstrapper can open every location: it holds every credential.
	init := f.Services["storage-init"]
	for _, loc := range cfg.Locations {
		for _, v := range credentialVars(loc) {
			assert.NotEmpty(t, init.Environment[v], "storage-init opens %s, which needs %s", loc.Name, v)
		}
	}
	assertTemporalAddress(t, f, "drflow", f.Services["drflow"])
}

// TestTemporalSetupRegistersSearchAttributes checks that the one-shot setup registers exactly
// the search attributes the workflows set.
func TestTemporalSetupRegistersSearchAttributes(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(testservers.RepoRoot(t), "deploy", "compose", "temporal-setup.sh"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^attributes="([^"]*)"$`).FindSubmatch(script)
	require.NotNil(t, m, "temporal-setup.sh has an attributes=\"NAME=TYPE ...\" line")
	got := map[string]string{}
	for _, a := range strings.Fields(string(m[1])) {
		name, typ, ok := strings.Cut(a, "=")
		require.True(t, ok, "attribute %q is not NAME=TYPE", a)
		got[name] = typ
	}
	assert.Equal(t, workflows.SearchAttributeDefinitions(), got)
}

// TestComposeWebUI checks the temporal-ui pin: a UI with the Update form that answers
// runbook approval gates (UI 2.34.4 and later), and the very UI embedded in the pinned
// Temporal CLI, whose dev server the Web UI tests (internal/webui) drive through Chromium,
// so that what they check is what this stack serves.
func TestComposeWebUI(t *testing.T) {
	root := testservers.RepoRoot(t)
	image := loadCompose(t, root).Services["temporal-ui"].Image
	require.True(t, strings.HasPrefix(image, "temporalio/ui:"), "temporal-ui image %q", image)
	pinned := tag(image)
	assert.GreaterOrEqual(t, compareVersions(t, pinned, "2.34.4"), 0,
		"temporalio/ui:%s has no Update form; approval gates need 2.34.4 or later", pinned)

	out, err := exec.Command(testservers.Tool(t, "temporal"), "--version").Output()
	require.NoError(t, err, "temporal --version")
	m := regexp.MustCompile(`\bUI (\d+\.\d+\.\d+)\b`).FindSubmatch(out)
	require.NotNil(t, m, "temporal --version names no UI version: %s", out)
	assert.Equal(t, string(m[1]), pinned,
		"docker-compose.yml pins temporalio/ui:%s, but the dev server of the pinned Temporal CLI (scripts/tools.sh), which the Web UI tests drive, embeds UI %s", pinned, m[1])
}

// compareVersions compares two MAJOR.MINOR.PATCH versions: -1, 0 or 1.
func compareVersions(t *testing.T, a, b string) int {
	t.Helper()
	parse := func(v string) []int {
		parts := strings.Split(v, ".")
		require.Len(t, parts, 3, "version %q is not MAJOR.MINOR.PATCH", v)
		nums := make([]int, len(parts))
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			require.NoError(t, err, "version %q", v)
			nums[i] = n
		}
		return nums
	}
	return slices.Compare(parse(a), parse(b))
}

func loadCompose(t *testing.T, root string) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	require.NoError(t, err)
	var f composeFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&f), "docker-compose.yml")
	return f
}

// loadMountedConfig loads the drflow configuration that the services mount: one file, at the
// path their --config names.
func loadMountedConfig(t *testing.T, root string, f composeFile) *config.Config {
	t.Helper()
	var host string
	for name, s := range f.Services {
		args := append(slices.Clone(s.Entrypoint), s.Command...)
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(strings.TrimSuffix(v, ":ro"), ":")
			if filepath.Base(src) != "drflow.yaml" {
				continue
			}
			if host == "" {
				host = src
			}
			assert.Equal(t, host, src, "%s mounts another configuration", name)
			if i := slices.Index(args, "--config"); i >= 0 && i+1 < len(args) {
				assert.Equal(t, dst, args[i+1], "%s: --config names the mounted file", name)
			} else {
				assert.Equal(t, dst, filepath.Join(s.WorkingDir, "drflow.yaml"), "%s: the default --config is the mounted file", name)
			}
		}
	}
	require.NotEmpty(t, host, "no service mounts a drflow.yaml")
	cfg, err := config.Load(filepath.Join(root, host))
	require.NoError(t, err, "the mounted configuration %s loads", host)
	return cfg
}

// asWorker recognises a drflow-worker service (built from deploy/drflow.Dockerfile, whose
// entrypoint is drflow-worker) and reads its region.
func asWorker(t *testing.T, name string, s service) (worker, bool) {
	if s.Build == nil || s.Build.Dockerfile != "deploy/drflow.Dockerfile" || len(s.Entrypoint) > 0 {
		return worker{}, false
	}
	w := worker{name: name, svc: s, control: slices.Contains(s.Command, "--control")}
	i := slices.Index(s.Command, "--region")
	if assert.True(t, i >= 0 && i+1 < len(s.Command), "%s: worker without --region (this stack runs one per region)", name) {
		w.region = s.Command[i+1]
	}
	return w, true
}

// credentialVars lists the environment variables a worker needs to open loc.
func credentialVars(loc config.Location) []string {
	switch loc.Provider {
	case providers.ProviderS3:
		return []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
	case providers.ProviderAzBlob:
		if loc.ConnectionStringEnv != "" {
			return []string{loc.ConnectionStringEnv}
		}
	case providers.ProviderGCS:
		if loc.Endpoint == "" { // an emulator needs none
			return []string{"GOOGLE_APPLICATION_CREDENTIALS"}
		}
	}
	return nil
}

// assertTemporalAddress checks that a drflow service reaches the temporal service's frontend.
func assertTemporalAddress(t *testing.T, f composeFile, name string, s service) {
	t.Helper()
	host, port, err := net.SplitHostPort(s.Environment["TEMPORAL_ADDRESS"])
	if assert.NoError(t, err, "%s: TEMPORAL_ADDRESS", name) {
		assert.Contains(t, f.Services, host, "%s: TEMPORAL_ADDRESS names no service", name)
		assert.Equal(t, "7233", port, "%s: the Temporal frontend port", name)
	}
	dep, ok := s.DependsOn["temporal-setup"]
	assert.True(t, ok && dep.Condition == "service_completed_successfully",
		"%s starts after temporal-setup has registered the search attributes", name)
}

var imageRef = regexp.MustCompile(`^[a-z0-9][a-z0-9./-]*:([A-Za-z0-9._-]+)$`)

// assertPinned checks that an image names a version: a tag with a digit, not latest.
func assertPinned(t *testing.T, image string) {
	t.Helper()
	m := imageRef.FindStringSubmatch(image)
	if assert.NotNil(t, m, "image %q has no tag", image) {
		assert.NotEqual(t, "latest", m[1], "image %q", image)
		assert.Regexp(t, `\d`, m[1], "image %q: the tag should name a version", image)
	}
}

func tag(image string) string {
	_, tag, _ := strings.Cut(image, ":")
	return tag
}

// assertBuild checks a build's context, Dockerfile, target, base images and ignore file.
func assertBuild(t *testing.T, root string, b *build) {
	t.Helper()
	context := filepath.Join(root, b.Context)
	require.DirExists(t, context)
	dockerfile := filepath.Join(context, b.Dockerfile)
	data, err := os.ReadFile(dockerfile)
	require.NoError(t, err, "build.dockerfile")
	stages := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?mi)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?`).FindAllStringSubmatch(string(data), -1) {
		if !stages[m[1]] { // FROM an earlier stage needs no tag
			assertPinned(t, m[1])
		}
		if m[2] != "" {
			stages[m[2]] = true
		}
	}
	if b.Target != "" {
		assert.True(t, stages[b.Target], "target %q is not a stage of %s", b.Target, b.Dockerfile)
	}
	for _, m := range regexp.MustCompile(`go build [^\n]*?(\./[\w./-]+)`).FindAllStringSubmatch(string(data), -1) {
		assert.DirExists(t, filepath.Join(context, m[1]), "%s builds %s", b.Dockerfile, m[1])
	}
	// BuildKit reads DOCKERFILE.dockerignore beside the Dockerfile; without it the context
	// would carry .tools/ (hundreds of MiB of emulators) and var/ into every build.
	ignore, err := os.ReadFile(dockerfile + ".dockerignore")
	if assert.NoError(t, err, "%s.dockerignore", b.Dockerfile) {
		lines := strings.Fields(string(ignore))
		assert.True(t, slices.Contains(lines, "*") || slices.Contains(lines, ".tools") && slices.Contains(lines, "var"),
			"%s.dockerignore keeps .tools and var out of the build context", b.Dockerfile)
	}
}

// assertPort checks that a published port is bound to 127.0.0.1 and returns its host side.
func assertPort(t *testing.T, p string) string {
	t.Helper()
	parts := strings.Split(p, ":")
	if assert.Len(t, parts, 3, "port %q: publish as 127.0.0.1:HOST:CONTAINER", p) {
		assert.Equal(t, "127.0.0.1", parts[0], "port %q is reachable from other machines", p)
		return parts[0] + ":" + parts[1]
	}
	return p
}

// assertNoInlinedSecrets checks every credential-like environment variable against the
// well-known development credentials.
func assertNoInlinedSecrets(t *testing.T, s service) {
	t.Helper()
	for name, value := range s.Environment {
		if !secretName.MatchString(name) {
			continue
		}
		if strings.HasPrefix(value, "${") {
			continue // taken from the caller's environment
		}
		if strings.HasSuffix(name, "_FILE") && strings.HasPrefix(value, "/") {
			continue // names the file that holds the secret, in a volume
		}
		if strings.Contains(value, "AccountKey=") {
			assert.Equal(t, azuriteConnection(value), value, "%s: only Azurite's published development account may be inlined", name)
			continue
		}
		_, ok := devCredentials[value]
		assert.True(t, ok, "%s: inlined credential is not one of the emulators' development values %v", name, devCredentials)
	}
	for _, arg := range append(slices.Clone(s.Entrypoint), s.Command...) {
		assert.NotRegexp(t, `(?i)password|secret|accountkey`, arg, "credentials go in the environment, not on command lines (ps shows them)")
	}
}

// azuriteConnection is the connection string of Azurite's development account at the endpoint
// named in s.
func azuriteConnection(s string) string {
	endpoint := ""
	for _, part := range strings.Split(s, ";") {
		if v, ok := strings.CutPrefix(part, "BlobEndpoint="); ok {
			endpoint = v
		}
	}
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;",
		testservers.AzuriteAccount, testservers.AzuriteKey, endpoint)
}

// TestComposeCodec: every drflow process that talks to Temporal seals payloads with the one
// keyring the codec-key service makes, and the Web UI decodes through the published codec
// server.
func TestComposeCodec(t *testing.T) {
	f := loadCompose(t, testservers.RepoRoot(t))
	key := f.Services["codec-key"]
	require.Equal(t, []string{"drflow"}, key.Entrypoint)
	i := slices.Index(key.Command, "--file")
	require.Positive(t, i, "codec-key names its file")
	file := key.Command[i+1]
	assert.Contains(t, key.Command, "--if-missing", "a second `up` keeps the keyring")
	for _, name := range []string{"drflow-worker-eu", "drflow-worker-us", "drflow"} {
		s := f.Services[name]
		assert.Equal(t, file, s.Environment["DRFLOW_CODEC_KEY_FILE"], "%s reads the keyring", name)
		assert.Contains(t, s.Volumes, "codec-key:"+filepath.Dir(file)+":ro", "%s mounts it read-only", name)
		assert.Equal(t, "service_completed_successfully", s.DependsOn["codec-key"].Condition, "%s waits for it", name)
	}
	srv := f.Services["drflow-codec"]
	assert.Equal(t, file, srv.Command[slices.Index(srv.Command, "--file")+1])
	require.Len(t, srv.Ports, 1)
	published := strings.Split(srv.Ports[0], ":")
	assert.Equal(t, "http://localhost:"+published[1], f.Services["temporal-ui"].Environment["TEMPORAL_CODEC_ENDPOINT"],
		"the browser calls the codec server at its published port")
	origins := srv.Command[slices.Index(srv.Command, "--ui-origin")+1]
	uiHost := strings.Split(f.Services["temporal-ui"].Ports[0], ":")[1]
	assert.Contains(t, strings.Split(origins, ","), "http://localhost:"+uiHost, "the Web UI's origin may call it")
}
