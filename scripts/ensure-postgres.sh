#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 and has a "mend" role that can create databases.
set -euo pipefail
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do port_open 5432 && break; sleep 1; done
fi
port_open 5432 || { echo "PostgreSQL is not answering on 5432" >&2; exit 1; }
# The tests connect as mend/mend over TCP: works with trust auth and with Debian's default scram.
if command -v runuser >/dev/null && [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
  runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -c \
    "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mend') THEN CREATE ROLE mend LOGIN CREATEDB PASSWORD 'mend'; END IF; END\$\$;" >/dev/null
fi
