# drflow's worker, command line and storage bootstrapper, built from this repository with the
# Go release that go.mod asks for. docker-compose.yml builds it for its workers; by hand:
#
#   docker build -f deploy/drflow.Dockerfile -t drflow .
#
# The build context is the repository root; deploy/drflow.Dockerfile.dockerignore keeps the
# local tool cache (.tools/), demo state (var/) and git history out of it.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/drflow ./starter \
 && CGO_ENABLED=0 go build -trimpath -o /out/drflow-worker ./worker \
 && CGO_ENABLED=0 go build -trimpath -o /out/drflow-storage-init ./deploy/storage-init

# The runtime has no pg_dump: add a PostgreSQL client matching your servers' major version
# before configuring PostgreSQL datasets.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/drflow drflow \
 && mkdir -p /var/lib/drflow /var/lib/drflow-codec /srv/drflow/data/customers /srv/drflow/data/us-logs \
 && echo "Sample file: put the data this worker protects here." >/srv/drflow/data/customers/README.txt \
 && echo "Sample file: put the data this worker protects here." >/srv/drflow/data/us-logs/README.txt \
 && chown -R drflow /var/lib/drflow /var/lib/drflow-codec /srv/drflow
COPY --from=build /out/ /usr/local/bin/
USER drflow
# Worker state (audit signing keys, local keyrings, drill scratch) lives here: keep it on a
# volume, it is the worker's identity in the audit trail.
VOLUME ["/var/lib/drflow"]
ENTRYPOINT ["drflow-worker"]
