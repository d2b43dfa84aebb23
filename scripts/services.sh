#!/usr/bin/env bash
# Make sure the Redis and PostgreSQL servers the tests use are running on 127.0.0.1.
# Starts them the way this machine's services are started when they are not answering.
set -u
redis_ok() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
pg_ok() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

if ! redis_ok; then
  echo "services: starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 50); do redis_ok && break; sleep 0.1; done
fi
if ! pg_ok && command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 100); do pg_ok && break; sleep 0.1; done
fi
redis_ok && echo "services: redis ok" || { echo "services: redis is not answering"; exit 1; }
if pg_ok; then
  echo "services: postgresql ok"
elif [ "${CI:-}" = "true" ]; then
  echo "services: postgresql is not answering (CI=true: its tests would fail)"; exit 1
else
  echo "services: postgresql is not answering; its tests will be skipped"
fi

# The dashboard's browser test drives Debian's chromium (playwright, from the lock, needs no
# browser download of its own).
if ! command -v chromium >/dev/null 2>&1 && [ -z "${PACEKEEPER_CHROMIUM:-}" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "services: installing Debian's chromium for the browser test"
    (apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update >/dev/null 2>&1 \
           && apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; }) \
      || echo "services: could not install chromium"
  fi
fi
command -v chromium >/dev/null 2>&1 || [ -n "${PACEKEEPER_CHROMIUM:-}" ] \
  && echo "services: chromium ok" || echo "services: chromium is missing; the browser test fails"
