#!/bin/sh
# System packages the test suite needs (called by `make test`; `make run` needs none of them):
# Chromium for the browser tests, poppler-utils (pdftotext, pdffonts) to read the patrol PDF
# back, and a TrueType CJK font (WenQuanYi Zen Hei) to embed in it.
# Installs them on Debian when it may (root, or passwordless sudo); otherwise stops at once
# with one line naming the command to run.
set -u

PACKAGES="chromium poppler-utils fonts-wqy-zenhei"
MESSAGE="make test 需要系统软件包: sudo apt-get install $PACKAGES"

missing() {
  command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || return 0
  command -v pdftotext >/dev/null 2>&1 && command -v pdffonts >/dev/null 2>&1 || return 0
  [ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || return 0
  return 1
}

missing || exit 0

if [ "$(id -u)" = "0" ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "$MESSAGE" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$MESSAGE (本机没有 apt-get: 请用本系统的包管理器安装同名软件)" >&2
  exit 1
fi

echo "== 安装测试所需的系统软件包: $PACKAGES"
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $PACKAGES >/dev/null; }; then
  echo "$MESSAGE (自动安装失败)" >&2
  exit 1
fi
if missing; then
  echo "$MESSAGE (安装后仍缺少)" >&2
  exit 1
fi
