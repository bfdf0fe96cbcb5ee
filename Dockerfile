# The image of djdeploy's GitHub Action (action.yml: runs.using docker).
#
# Base images are pinned to exact versions; Dependabot (.github/dependabot.yml,
# ecosystem docker) proposes updates. They are not pinned by digest because no
# digest could be verified where this file was written; add
# `@sha256:...` once verified against the registry.

# Build: a static binary, reproducible paths, no cgo.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=action
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/djdeploy/djdeploy/internal/cli.Version=${VERSION}" \
      -o /out/djdeploy ./cmd/djdeploy

# Runtime: the Python that App Service runs (python-version defaults to
# 3.12), so `build` collects static files and vendors wheels with the
# interpreter the app will run on. slim keeps the image small; zip-building
# is done by djdeploy itself, so no zip package is needed.
FROM python:3.12.12-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY --from=build /out/djdeploy /usr/local/bin/djdeploy
COPY entrypoint /entrypoint
# No USER: GitHub runs container actions as root and mounts the workspace
# owned by the runner; no WORKDIR: the runner sets --workdir itself.
ENTRYPOINT ["/entrypoint"]
