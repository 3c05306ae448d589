# One image for the API (`erp serve`), the workers (`erp worker`), the scheduler
# (`erp scheduler`), the migration Job (`erp migrate`) and the CronJobs (`erp tenants
# purge`, `erp ledger compact`). Built by CI elsewhere; no container engine runs on dev
# machines: tests/deploy/test_image.py lints this file with hadolint and replays both
# stages' COPY lines into a fresh virtualenv to run `erp migrate` from the wheel.

# -- build: the package and its dependencies in a virtualenv ---------------------------
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY platform ./platform
RUN python -m venv /opt/erp \
    && /opt/erp/bin/pip install --no-cache-dir . \
    && /opt/erp/bin/pip uninstall --yes pip

# -- final: the virtualenv, the data directories, a non-root user; no build tools ------
FROM python:3.11.14-slim-bookworm
RUN groupadd --system --gid 10001 erp \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app erp
WORKDIR /app
COPY --from=build /opt/erp /opt/erp
COPY migrations ./migrations
COPY policies ./policies
COPY tenants/templates ./tenants/templates
# ERP_ROOT: where migrations/, policies/ and tenants/templates/ are (erp/paths.py).
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only in the chart.
ENV PATH=/opt/erp/bin:$PATH \
    ERP_ROOT=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=2)"]
ENTRYPOINT ["erp"]
CMD ["serve"]
