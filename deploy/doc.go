// Package deploy holds what docker-compose.yml builds and mounts (deploy/drflow.Dockerfile,
// deploy/emulators.Dockerfile, deploy/compose/) and the test that checks the stack without a
// Docker engine: pinned images, existing build contexts and mounts, dependencies, published
// ports, the drflow configuration the workers load, each worker's region and credentials,
// and that no secret beyond the emulators' well-known development values is inlined.
package deploy
