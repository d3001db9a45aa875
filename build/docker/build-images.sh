#!/usr/bin/env bash
# build-images.sh [WORKLOAD...]: build meshdemo images with no registry pull.
#
# For each workload: a static binary for the engine's platform, built on the host, goes into
# a small build context (dist/image-context/bin/<os>_<arch>/<workload>), and
# build/Dockerfile.prebuilt turns it into $IMAGE_REPO/<workload>:$IMAGE_TAG. Then the image
# size is checked against MAX_IMAGE_BYTES.
#
# Environment: IMAGE_REPO (meshdemo), IMAGE_TAG (dev), TARGETOS / TARGETARCH (the engine's),
# MAX_IMAGE_BYTES (15 MiB), GO (go), GO_TAGS (grpcnotrace,nopgxregisterdefaulttypes),
# BUILDX_NO_DEFAULT_ATTESTATIONS (1).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

GO=${GO:-go}
IMAGE_REPO=${IMAGE_REPO:-meshdemo}
IMAGE_TAG=${IMAGE_TAG:-dev}
MAX_IMAGE_BYTES=${MAX_IMAGE_BYTES:-$((15 * 1024 * 1024))}
# The image must match the engine, not the host's Go defaults (an arm64 engine may sit
# behind an amd64 client).
TARGETOS=${TARGETOS:-$(docker version -f '{{.Server.Os}}' 2>/dev/null || echo linux)}
TARGETARCH=${TARGETARCH:-$(docker version -f '{{.Server.Arch}}' 2>/dev/null || "$GO" env GOARCH)}
# Same tags as build/Dockerfile's GO_TAGS (see the reason there).
GO_TAGS=${GO_TAGS:-grpcnotrace,nopgxregisterdefaulttypes}
VCS_REF=${VCS_REF:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
# No provenance attestation, so that `kind load docker-image` works with Docker's containerd
# image store (see build/make/images.mk).
export BUILDX_NO_DEFAULT_ATTESTATIONS=${BUILDX_NO_DEFAULT_ATTESTATIONS:-1}

if [ $# -eq 0 ]; then
	# The declared workloads (deploy/matrix).
	# shellcheck disable=SC2046 # one name per line, no spaces
	set -- $(cd "$root/deploy/matrix" && GOWORK=off "$GO" run ./cmd/matrix workloads)
fi

ctx=$root/dist/image-context
bindir=$ctx/bin/${TARGETOS}_${TARGETARCH}
mkdir -p "$bindir"

status=0
for w in "$@"; do
	(cd services && CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
		"$GO" build -tags "$GO_TAGS" -trimpath -ldflags='-s -w' -o "$bindir/$w" "./$w")
	image=$IMAGE_REPO/$w:$IMAGE_TAG
	# No --pull, and the context holds only binaries: nothing leaves this machine.
	docker build --quiet -f build/Dockerfile.prebuilt \
		--build-arg WORKLOAD="$w" --build-arg TARGETOS="$TARGETOS" --build-arg TARGETARCH="$TARGETARCH" \
		--build-arg VCS_REF="$VCS_REF" --build-arg IMAGE_VERSION="$IMAGE_TAG" \
		-t "$image" "$ctx" >/dev/null
	size=$(docker image inspect -f '{{.Size}}' "$image")
	if [ "$size" -gt "$MAX_IMAGE_BYTES" ]; then
		printf '%-28s %9d bytes  TOO BIG (limit %d)\n' "$image" "$size" "$MAX_IMAGE_BYTES" >&2
		status=1
	else
		printf '%-28s %9d bytes (%s/%s)\n' "$image" "$size" "$TARGETOS" "$TARGETARCH"
	fi
done
# A rebuilt tag leaves the previous image dangling; drop ours (and only ours).
docker image prune -f --filter label=org.opencontainers.image.vendor=meshdemo >/dev/null || true
exit $status
