# Builds the S3 and GCS emulators from the same pinned sources as scripts/tools.sh.
FROM golang:1.26 AS build
ARG MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
ARG FAKE_GCS_VERSION=v1.56.1
RUN GOBIN=/out go install github.com/minio/minio@${MINIO_VERSION} \
 && GOBIN=/out go install github.com/fsouza/fake-gcs-server@${FAKE_GCS_VERSION}

FROM debian:12-slim AS minio
COPY --from=build /out/minio /usr/local/bin/minio
ENTRYPOINT ["minio"]

FROM debian:12-slim AS fake-gcs-server
COPY --from=build /out/fake-gcs-server /usr/local/bin/fake-gcs-server
ENTRYPOINT ["fake-gcs-server"]
