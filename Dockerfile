# 安居助手's image for deploy/k8s/: the gateway, the Rasa server, the action server and the jobs all run from it, with
# different commands (the manifests name them). Built from the repository's root with the model trained in the build:
#   docker build -t anju:$(git rev-parse --short HEAD) .
# The place served is read at training time: --build-arg ANJU_PROVINCE=… ANJU_CITY=… ANJU_COUNTY=… (defaults: the
# settings' own). CI lints this file (make lint-deploy: hadolint); it does not build it.
FROM python:3.10-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RASA_TELEMETRY_ENABLED=false \
    TF_CPP_MIN_LOG_LEVEL=2 \
    SQLALCHEMY_SILENCE_UBER_WARNING=1 \
    HOME=/tmp
WORKDIR /app
COPY requirements.lock requirements-gateway.lock ./
# the gateway has a virtualenv of its own: the public door on a current aiohttp, apart from Rasa's pins (README,
# Dependencies); the manifests start it as /opt/gateway/bin/python -m bot.web
RUN pip install --no-cache-dir -r requirements.lock \
    && python -m venv /opt/gateway \
    && /opt/gateway/bin/pip install --no-cache-dir -r requirements-gateway.lock
COPY . .

FROM base AS model
ARG ANJU_PROVINCE=""
ARG ANJU_CITY=""
ARG ANJU_COUNTY=""
RUN rasa train --skip-validation --fixed-model-name anju --out models

FROM base
COPY --from=model /app/models/anju.tar.gz models/anju.tar.gz
# a user of its own; run/ (the secret file when ANJU_SECRET_KEY is unset, run/endpoints.yml) is its only writable
# folder, and the manifests mount an emptyDir there as the root filesystem is read-only
RUN groupadd --system --gid 10001 anju \
    && useradd --system --uid 10001 --gid anju --no-create-home --home-dir /tmp anju \
    && mkdir -p run && chown anju:anju run && chmod 0700 run
USER 10001
EXPOSE 8080 5005 5055
CMD ["/opt/gateway/bin/python", "-m", "bot.web"]
