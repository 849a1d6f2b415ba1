#!/usr/bin/env bash
# Letters are PDFs set in DejaVu Sans (Welsh needs ŵ and ŷ): install Debian's font package if absent.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
if [ ! -f "$font" ]; then
  echo "installing fonts-dejavu-core"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null
fi
[ -f "$font" ] || { echo "$font is missing: letters cannot be rendered" >&2; exit 1; }
