# syntax=docker/dockerfile:1
# The orderdesk API server, installed from this checkout's own files (no dev dependencies),
# run as an unprivileged user. Every setting comes from ORDERDESK_* variables (README.md):
#
#   docker build -t orderdesk .
#   docker run -p 8000:8000 -e ORDERDESK_JWT_SECRET=... orderdesk
#
# Without ORDERDESK_DATABASE_URL it serves the embedded SQLite default inside the container
# (gone with it); compose.yaml runs the scale-out setup on PostgreSQL and Redis.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# pyproject.toml names README.md as the package's readme: the build needs it.
COPY pyproject.toml README.md ./
COPY mediator ./mediator
COPY domain ./domain
COPY handlers ./handlers
COPY persistence ./persistence
COPY schema ./schema
COPY orderdesk ./orderdesk
RUN python -m venv /opt/orderdesk \
    && /opt/orderdesk/bin/pip install . \
    && /opt/orderdesk/bin/pip uninstall --yes pip

FROM python:3.11-slim
ENV PATH=/opt/orderdesk/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/orderdesk \
    orderdesk
COPY --from=build /opt/orderdesk /opt/orderdesk
USER orderdesk
# Writable by the server: the SQLite default and its token secret file land here when no
# database or secret is configured.
WORKDIR /var/lib/orderdesk
EXPOSE 8000
# Ready, not only alive: 503 while a projection is parked or the database does not answer.
# urlopen raises on any status but 2xx, so the check fails then (the slim image has no curl).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ORDERDESK_PORT', '8000') + '/health/ready', timeout=2)"]
CMD ["orderdesk", "serve", "--host", "0.0.0.0"]
