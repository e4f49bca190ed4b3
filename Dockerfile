# syntax=docker/dockerfile:1
# The dataflow image: `python -m bytewax.run dataflow.flow` as uid 10001, runtime dependencies only.

FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# README.md is the project's `readme`; the bracket keeps the build going where it is absent.
COPY pyproject.toml README.m[d] ./
COPY requirements/runtime.txt ./requirements/runtime.txt
# Exactly the locked runtime set (hashes checked), at the versions the suite tested: no extras.
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r requirements/runtime.txt
COPY dataflow ./dataflow
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.12-slim
RUN groupadd --gid 10001 app && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0555 deploy/entrypoint.sh /app/entrypoint.sh
# Read-only root filesystem in the pod: no bytecode writes; HOME on the /tmp emptyDir.
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
WORKDIR /app
USER 10001:10001
EXPOSE 2101 9108
ENTRYPOINT ["/app/entrypoint.sh"]
