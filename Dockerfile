# Trellis API / worker image (used by compose.yaml); with the otel extra, so OTEL_* settings
# turn traces on without a rebuild (they are off by default).
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --extra otel --no-install-project
COPY server ./server
COPY graphs ./graphs
COPY agents ./agents
COPY tools ./tools
COPY prompts ./prompts
COPY langgraph.json ./
RUN uv sync --frozen --no-dev --extra otel

ENV PATH="/app/.venv/bin:$PATH" \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8123
EXPOSE 8123
CMD ["trellis", "serve"]
