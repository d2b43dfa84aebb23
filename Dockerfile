# syntax=docker/dockerfile:1
# One image for every service: docker-compose.yml picks the sub-command
# (api, worker, monitor, paper, db upgrade).

# -- build: a virtualenv with the dependencies and Pacekeeper installed ----------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /opt/pacekeeper
# Dependencies first, so a code change does not reinstall them: the runtime ones only, at the
# versions requirements.lock pins (the lock also pins the dev tools, which the image leaves out).
COPY pyproject.toml README.md requirements.lock ./
RUN mkdir app paper worker && touch app/__init__.py paper/__init__.py worker/__init__.py \
    && pip install --no-cache-dir --constraint requirements.lock . \
    && pip uninstall -y pacekeeper
COPY app ./app
COPY paper ./paper
COPY worker ./worker
COPY migrations ./migrations
# Editable: `pacekeeper db upgrade` finds migrations/ and the [tool.alembic] section of
# pyproject.toml next to the package, as in a checkout.
RUN pip install --no-cache-dir --no-deps -e . \
    && find /opt/venv /opt/pacekeeper -name '__pycache__' -prune -exec rm -rf {} +

# -- runtime: the virtualenv and the source, run as an unprivileged user ------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PACEKEEPER_API_HOST=0.0.0.0
RUN groupadd --system --gid 10001 pacekeeper \
    && useradd --system --uid 10001 --gid pacekeeper --home-dir /opt/pacekeeper \
       --shell /usr/sbin/nologin pacekeeper
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/pacekeeper /opt/pacekeeper
WORKDIR /opt/pacekeeper
# The default SQLite file lives in ./var; compose uses PostgreSQL instead.
RUN mkdir -p var && chown pacekeeper:pacekeeper var
USER pacekeeper
EXPOSE 8000 8100
# No curl in slim images: the check is Python. With no role given it checks what this
# container runs (api: GET /health; worker: RQ registry; monitor: last cycle; paper: time).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "app.healthcheck"]
ENTRYPOINT ["pacekeeper"]
CMD ["api"]
