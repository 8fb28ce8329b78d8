# One image for the API (`relay serve`) and the worker (`relay worker`).
# Pinned to a patch release: a rebuild gets the same Python until someone moves the pin.
# Dependencies come from requirements.lock (scripts/lock), installed with --no-deps: two
# builds of one commit get the same packages, whatever was released in between.
FROM python:3.12.13-slim-bookworm AS build
WORKDIR /src
COPY requirements.lock requirements-build.lock ./
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY relay ./relay
COPY workers ./workers
COPY config ./config
# The build backend at the locked versions too (pip applies PIP_CONSTRAINT to the isolated
# build environment it makes). The lock holds the tracing extra's packages, so
# OTEL_TRACES_EXPORTER=otlp works in the image as documented.
RUN PIP_CONSTRAINT=requirements-build.lock \
    pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12.13-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RELAY_HOST=0.0.0.0 \
    RELAY_PORT=8000 \
    RELAY_LOG_FORMAT=json
RUN useradd --system --uid 10001 --no-create-home relay
COPY --from=build /wheels /wheels
# --no-index --no-deps: exactly the wheels built above, nothing resolved afresh.
RUN pip install --no-cache-dir --no-index --no-deps /wheels/*.whl && rm -rf /wheels
USER relay
EXPOSE 8000
# The API is up when /healthz answers (no dependency checked: a Redis outage must not get
# the API restarted). The slim image has no curl; Python's urllib exits 1 on any error.
# The worker's service in docker-compose.yml replaces this with its metrics port.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RELAY_PORT', '8000') + '/healthz', timeout=4)"]
CMD ["relay", "serve"]
