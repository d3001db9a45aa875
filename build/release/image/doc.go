// Package image builds meshdemo's release images: one Go binary in an otherwise empty OCI image
// per platform, and an OCI image index over the platforms, byte-for-byte reproducible from a
// commit.
//
// Why go-containerregistry and not ko (or docker buildx): ko owns the `go build` (its own flags,
// its own idea of the tags and of the version stamp) and starts from a base image that it pulls
// from a registry at build time (distroless by default); buildx needs a daemon, BuildKit and, for
// build/Dockerfile, the golang builder image from Docker Hub. The release needs neither. We
// compile the binaries ourselves, exactly as the Makefile does (CGO_ENABLED=0, -trimpath, the
// same GO_TAGS), and go-containerregistry assembles the image in memory FROM scratch
// (empty.Image): nothing is pulled, no daemon runs, and every byte of the manifest, the config and
// the layer is under our control, which is what makes the digests reproducible. The same library
// pushes the result (pkg/v1/remote) and, in the tests, serves it (pkg/registry), so the tests
// exercise the real registry protocol in-process.
//
// Reproducibility: the same commit gives the same index digest on any machine with the same Go
// toolchain. No clock is read anywhere: the one time in the image (config `created`, history,
// the layer's file mtime, the `org.opencontainers.image.created` label) is the commit's time
// from `git log -1 --format=%ct`. The binary is built with -trimpath, -buildvcs=false and
// -ldflags '-s -w -buildid=' (no paths, no VCS stamp, no build id), with GOAMD64/GOARM64 pinned
// to their defaults and GOFLAGS and GOEXPERIMENT cleared, so that neither the machine's go env
// nor the caller's environment changes the bytes. The layer is a tar written here with a single
// entry (the binary, mode 0755, uid/gid 0, no user or group names, USTAR header) and gzipped by
// compress/gzip at a fixed level with an empty gzip header (no name, no mtime). Config, manifest
// and index are JSON marshalled from Go structs (fixed field order, sorted map keys); the index
// lists the platforms in a fixed order (Platforms).
package image
