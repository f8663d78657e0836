#!/usr/bin/env bash
# Installs what the browser tests (tests/web, marker `browser`) need and nothing else:
# Debian's Chromium. Idempotent: does nothing when /usr/bin/chromium already runs.
# Playwright for Python comes with the dev extra; it drives this Chromium through
# executable_path, so `playwright install` (a browser download) is never run.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && chromium --version >/dev/null 2>&1; then
  echo "chromium present: $(chromium --version)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "chromium installed: $(chromium --version)"
