# One image for the API (`relay serve`) and the worker (`relay worker`).
# Pinned to a patch release: a rebuild gets the same Python until someone moves the pin.
FROM python:3.12.13-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY relay ./relay
COPY workers ./workers
COPY config ./config
# With the tracing extra: OTEL_TRACES_EXPORTER=otlp works in the image as documented.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[tracing]"

FROM python:3.12.13-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RELAY_HOST=0.0.0.0 \
    RELAY_PORT=8000 \
    RELAY_LOG_FORMAT=json
RUN useradd --system --uid 10001 --no-create-home relay
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER relay
EXPOSE 8000
# The API is up when /healthz answers (no dependency checked: a Redis outage must not get
# the API restarted). The slim image has no curl; Python's urllib exits 1 on any error.
# The worker's service in docker-compose.yml replaces this with its metrics port.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RELAY_PORT', '8000') + '/healthz', timeout=4)"]
CMD ["relay", "serve"]
