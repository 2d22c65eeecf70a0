#!/usr/bin/env bash
# Installs Debian's headless Chromium for the end-to-end browser test (tests/test_serve_browser.py).
# Playwright drives it through executable_path=/usr/bin/chromium; `playwright install` is not used
# (it downloads its own browser builds, which CI machines without internet cannot do).
# fonts-nanum: a Korean font, so screenshots of the demo page show Hangul instead of boxes.
set -euo pipefail
if [ -x /usr/bin/chromium ] && fc-list :lang=ko | grep -q .; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium chromium-driver fonts-nanum
