# One image for every service role (web, workers, beat, migrate); compose.yaml picks the command.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BONEAGE_VAR_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY core ./core
COPY services ./services
COPY boneage ./boneage
COPY training ./training
COPY db ./db
COPY migrations ./migrations
COPY web ./web
COPY worker ./worker
RUN pip install . \
    && useradd --create-home --uid 1000 boneage \
    && mkdir -p /data \
    && chown boneage /data

USER boneage
WORKDIR /home/boneage
EXPOSE 8000
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "4", "web:create_app()"]
