# SFAI images. Two targets from one file:
#   docker build --target serving  -t sfai-serving  .   # API + web console: ONNX Runtime, no torch (~0.6 GB)
#   docker build --target training -t sfai-training .   # + PyTorch (CPU), MLflow, Ray: training, tuning, batch jobs
# docs/deploy.md runs them with docker-compose.yml (PostgreSQL, Redis, MQTT, an MLflow server, a Ray head).

FROM python:3.11-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SFAI_HOME=/var/lib/sfai \
    SFAI_ENVIRONMENT=production \
    NUMBA_CACHE_DIR=/opt/sfai/.numba
# an unprivileged user (uid/gid 10001) owns the state directory; nothing runs as root
RUN groupadd --system --gid 10001 sfai \
    && useradd --system --uid 10001 --gid sfai --home-dir /var/lib/sfai --create-home --shell /usr/sbin/nologin sfai
WORKDIR /opt/sfai

FROM base AS serving
COPY pyproject.toml README.md constraints.txt ./
COPY pipelines ./pipelines
COPY feature_store ./feature_store
COPY models ./models
COPY serving ./serving
COPY optimization ./optimization
# the base dependencies only: the serving path imports onnxruntime, never torch
RUN pip install --no-compile -c constraints.txt . \
    && python -c "import serving.app, sys; assert 'torch' not in sys.modules" \
    && mkdir -p /opt/sfai/.numba && chown 10001:10001 /opt/sfai/.numba
USER 10001:10001
# compile the scheduling module's loops (tabu search, dispatching) once, into NUMBA_CACHE_DIR (-P: the installed
# package, not ./)
RUN python -P -c "from optimization.heuristics import warm; warm()"
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# SFAI_SECRET_KEY must be set (production refuses the development placeholder)
CMD ["sfai", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]

FROM serving AS training
USER 0:0
# PyTorch's CPU wheel (the default index would pull a multi-GB CUDA build); ".[train]" is this project with its
# training extra (its own version pins live in pyproject.toml), not a package hadolint could pin here
# hadolint ignore=DL3013
RUN pip install --no-compile torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-compile -c constraints.txt ".[train]"
USER 10001:10001
CMD ["sfai", "--help"]
