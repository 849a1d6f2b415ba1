#!/usr/bin/env bash
# Make sure RabbitMQ answers on 127.0.0.1:5672 with the management API on :15672 (tests use it).
set -euo pipefail
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v rabbitmq-server >/dev/null && ! port_open 5672; then
  echo "installing rabbitmq-server"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
fi
if ! port_open 5672; then
  echo "starting RabbitMQ"
  as_root rabbitmq-server -detached || true
  as_root rabbitmqctl await_startup --timeout 120
fi
if ! port_open 15672; then
  if command -v rabbitmq-plugins >/dev/null; then
    echo "enabling the RabbitMQ management plugin"
    as_root rabbitmq-plugins enable rabbitmq_management >/dev/null
  fi
  for _ in $(seq 1 60); do port_open 15672 && break; sleep 1; done
fi
port_open 5672 || { echo "RabbitMQ is not answering on 5672" >&2; exit 1; }
port_open 15672 || { echo "RabbitMQ management API is not answering on 15672" >&2; exit 1; }
