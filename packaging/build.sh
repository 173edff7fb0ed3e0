#!/usr/bin/env bash
# Build the DTPM Studio desktop bundle (one folder) with PyInstaller.
#
#   packaging/build.sh [DISTDIR]          default DISTDIR: dist/
#
# Uses the project's .venv (PYTHON=... to use another interpreter, e.g. a CPU-only venv) and
# installs PyInstaller into it when it is missing. Environment: DTPM_BUNDLE_MODELS=DIR (model
# folder to bundle), DTPM_BUNDLE_CPU_ONLY=1 (leave out the GPU-only libraries),
# DTPM_BUNDLE_NO_TORCH=1 (a CPU bundle without torch: the networks run on OpenVINO from the
# model folder's graphs/, which this script converts first where any is missing; that needs
# torch in the build environment, not in the bundle), BUILD_DIR (PyInstaller's work folder,
# default build/pyinstaller). See packaging/README.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DIST="$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)"
WORK="${BUILD_DIR:-$ROOT/build/pyinstaller}"

if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
    echo "installing PyInstaller into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
    "$PYTHON" -m pip install -q --disable-pip-version-check "pyinstaller>=6.10"
fi

case "${DTPM_BUNDLE_NO_TORCH:-}" in
    1|true|yes)
        # every network as an OpenVINO graph beside the models (kept where whole already)
        MODELS="${DTPM_BUNDLE_MODELS:-$ROOT/resources/models}"
        echo "converting the graphs of $MODELS (dtpm-train graphs)"
        (cd "$ROOT" && "$PYTHON" -m trainer.cli graphs --models "$MODELS")
        ;;
esac

started=$(date +%s)
"$PYTHON" -m PyInstaller --noconfirm --log-level "${PYINSTALLER_LOG_LEVEL:-WARN}" \
    --distpath "$DIST" --workpath "$WORK" "$ROOT/packaging/dtpm_studio.spec"
seconds=$(( $(date +%s) - started ))

case "$(uname -s)" in
    Darwin) OUT="$DIST/DTPM Studio.app" ;;
    *) OUT="$DIST/DTPM Studio" ;;
esac
echo "built in ${seconds} s: $OUT"
echo "size: $(du -sh "$OUT" | cut -f1)"
echo "largest parts:"
du -s "$OUT"/_internal/* 2>/dev/null | sort -rn | head -8 \
    | while IFS=$'\t' read -r kib path; do
        awk -v kib="$kib" -v name="${path##*/}" 'BEGIN { printf "  %6.1f MiB  %s\n", kib / 1024, name }'
    done
case "$(uname -s)" in
    Darwin) echo "run: open \"$OUT\"   (self-test: \"$OUT/Contents/MacOS/dtpm-studio\" --self-test)" ;;
    MINGW*|MSYS*|CYGWIN*) echo "run: \"$OUT/dtpm-studio.exe\"" ;;
    *) echo "run: \"$OUT/dtpm-studio\"   (self-test: add --self-test; menu entry: --install-desktop-entry)" ;;
esac
