# The service as an image: `docker build -t claude-chatbot .`
# Runs `bot serve` on $PORT as a non-root user; `bot migrate` is the one-off release step:
#   docker run --rm --env-file .env claude-chatbot bot migrate
# The entry commands match the Procfile's (tests/test_docker.py checks).

# --- build: install the package and its dependencies into a virtualenv ---------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so a code change reuses the cached layer.
COPY pyproject.toml README.md ./
RUN mkdir bot adapters migrations && touch bot/__init__.py adapters/__init__.py migrations/__init__.py \
    && pip install . && pip uninstall --yes claude-chatbot
COPY bot ./bot
COPY adapters ./adapters
COPY migrations ./migrations
RUN pip install --no-deps . && bot --help > /dev/null

# --- run: the virtualenv alone, on a slim base, as an unprivileged user ----------------------
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 --user-group bot \
    && mkdir /data && chown bot:bot /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATABASE_URL=sqlite:////data/bot.db
WORKDIR /home/bot
USER bot
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=4)"]
CMD ["bot", "serve"]
