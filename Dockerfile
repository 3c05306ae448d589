# One image for the API (`erp serve`), the workers (`erp worker`) and the
# migration Job (`erp migrate`). Built by CI elsewhere; not built on dev machines.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY platform ./platform
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /app erp
WORKDIR /app
COPY --from=build /install /usr/local
COPY migrations ./migrations
COPY policies ./policies
COPY tenants ./tenants
ENV ERP_ROOT=/app \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=2)"]
ENTRYPOINT ["erp"]
CMD ["serve"]
