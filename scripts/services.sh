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
