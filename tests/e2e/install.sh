#!/usr/bin/env bash
# Installs what tests/e2e/test_browser.py needs:
#   * Debian's Chromium (/usr/bin/chromium) from the distribution's packages;
#   * Playwright for Python from PyPI, used only as a driver for that Chromium.
# Never runs `playwright install`: the test points Playwright at /usr/bin/chromium instead of the tool's own
# browser download (which does not work on every machine, and is not needed).
#
#   bash tests/e2e/install.sh            # as root (or with sudo available)
#   PYTHON=/path/to/python bash tests/e2e/install.sh
set -euo pipefail
PYTHON="${PYTHON:-python3}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends chromium fonts-liberation
fi
/usr/bin/chromium --version

"$PYTHON" -m pip install -q playwright
"$PYTHON" -c "import playwright, importlib.metadata as m; print('playwright', m.version('playwright'))"

# The newest frontend, to run the suite against it as well (ComfyUI 0.29 bundles 1.47):
#   MOFO_E2E_FRONTEND_ROOT=$FRONTEND_DIR/comfyui_frontend_package/static pytest tests/e2e
FRONTEND_VERSION="${FRONTEND_VERSION:-1.58.1}"
FRONTEND_DIR="${FRONTEND_DIR:-$HOME/.cache/mofo/frontend-$FRONTEND_VERSION}"
if [ ! -f "$FRONTEND_DIR/comfyui_frontend_package/static/index.html" ]; then
    mkdir -p "$FRONTEND_DIR"
    "$PYTHON" -m pip download -q --no-deps "comfyui-frontend-package==$FRONTEND_VERSION" -d "$FRONTEND_DIR"
    "$PYTHON" -m zipfile -e "$FRONTEND_DIR"/comfyui_frontend_package-"$FRONTEND_VERSION"-*.whl "$FRONTEND_DIR"
fi
echo "frontend $FRONTEND_VERSION: MOFO_E2E_FRONTEND_ROOT=$FRONTEND_DIR/comfyui_frontend_package/static"
