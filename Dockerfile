# The runbook image: the Debian package built from this tree, installed on
# Debian slim, run as a non-root user, with the audit log on a volume.
#
#   docker build -t runbook \
#     --build-arg RUNBOOK_GIT_DESCRIBE="$(git describe --tags --always --dirty)" \
#     [--build-arg BASE=debian:bookworm-slim] \
#     [--build-arg KUBECTL_VERSION=v1.31.4] \
#     [--build-arg DOCKER_VERSION=27.4.1 --build-arg DOCKER_SHA256=<sha256 of docker-27.4.1.tgz>] .
#   docker run --rm -v "$PWD:/work" -v runbook-audit:/home/runbook/.local/state/runbook \
#     runbook run NAME --dry-run
#
# BASE is the Debian every stage starts from.  Its default names the stable
# release by codename (bookworm-slim: its point releases and security fixes,
# nothing else) rather than a pinned point release, because the base is the
# builder's choice: CI (scripts/image-test.sh, stage 6 of .ci/run) has no
# registry and passes a local image that mmdebstrap made and `docker import`
# loaded; to pin it, pass a digest (debian:bookworm-slim@sha256:...).
# scripts/lint-dockerfile.sh accepts a moving Debian tag only as such a build
# argument's default.
#
# Plain Dockerfile syntax, no `# syntax=` line: with BuildKit that line pulls
# a frontend image from Docker Hub before building, which fails offline.
# Debian's docker.io 20.10 (and so CI) builds with the classic builder unless
# DOCKER_BUILDKIT=1; both build every stage here.
#
# The rules it follows are checked by scripts/lint-dockerfile.sh (CI and
# ctest lint_dockerfile).  No HEALTHCHECK: a container runs one runbook and
# exits (a job, a Kubernetes CronJob), there is no long-running service whose
# health could be probed, and Kubernetes ignores HEALTHCHECK anyway.
ARG BASE=debian:bookworm-slim

# ---- build: the .deb, exactly as CI builds it ---------------------------------
FROM ${BASE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# the dependencies first: a source change does not reinstall them
COPY scripts/install-deps.sh scripts/install-deps.sh
# only what building the package needs, not the test set (PostgreSQL, dockerd...)
RUN bash scripts/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
# The context has no .git (.dockerignore): the version comes from the builder.
ARG RUNBOOK_GIT_DESCRIBE=unknown
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
      -DRUNBOOK_GIT_DESCRIBE="${RUNBOOK_GIT_DESCRIBE}" -DRUNBOOK_TESTS=OFF \
 && cmake --build build -j"$(nproc)" --target package

# ---- tools: kubectl and the docker CLI, only when asked for ---------------------
FROM ${BASE} AS tools
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# empty: not installed.  A version, never a moving channel.
ARG KUBECTL_VERSION=""
ARG DOCKER_VERSION=""
# download.docker.com publishes no checksums for its static builds: give it
ARG DOCKER_SHA256=""
# curl only when there is something to download: the final stage copies
# from this one, so it is built even when no tool is asked for
RUN if [ -n "${KUBECTL_VERSION}${DOCKER_VERSION}" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends ca-certificates curl \
      && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /out
RUN set -eu; arch="$(dpkg --print-architecture)"; \
    if [ -n "${KUBECTL_VERSION}" ]; then \
      url="https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${arch}/kubectl"; \
      curl -fsSLo kubectl "${url}"; \
      echo "$(curl -fsSL "${url}.sha256")  kubectl" | sha256sum -c -; \
      chmod 0755 kubectl; \
    fi; \
    if [ -n "${DOCKER_VERSION}" ]; then \
      case "${arch}" in amd64) darch=x86_64 ;; arm64) darch=aarch64 ;; \
        *) echo "no static docker CLI for ${arch}" >&2; exit 1 ;; esac; \
      if [ -z "${DOCKER_SHA256}" ]; then echo "DOCKER_VERSION needs DOCKER_SHA256" >&2; exit 1; fi; \
      curl -fsSLo docker.tgz "https://download.docker.com/linux/static/stable/${darch}/docker-${DOCKER_VERSION}.tgz"; \
      echo "${DOCKER_SHA256}  docker.tgz" | sha256sum -c -; \
      tar -xzf docker.tgz --strip-components=1 docker/docker; \
      rm docker.tgz; \
    fi

# ---- runtime ----------------------------------------------------------------------
FROM ${BASE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=build /src/build/runbook_*.deb /tmp/
# The package's Recommends by name (libcurl: http, libpq: db on PostgreSQL,
# libedit: the REPL's line editing); ssh for the ssh primitive.  Debian slim
# drops /usr/share/doc and man pages: the image has no examples or man pages.
RUN apt-get update \
 && apt-get install -y --no-install-recommends /tmp/runbook_*.deb \
      ca-certificates libcurl4 libpq5 libedit2 openssh-client \
 && rm -rf /var/lib/apt/lists/* /tmp/runbook_*.deb
COPY --from=tools /out/ /usr/local/bin/
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin runbook \
 && install -d -o runbook -g runbook /home/runbook/.local/state/runbook /work
USER runbook
WORKDIR /work
# The audit log (~/.local/state/runbook/audit.db) outlives the container.
VOLUME ["/home/runbook/.local/state/runbook"]
ENTRYPOINT ["runbook"]
CMD ["help"]
