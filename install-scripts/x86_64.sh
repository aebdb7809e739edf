#!/usr/bin/env bash
# icc: MXNet dependencies of the Image Classification x86_64 connector (Ubuntu/Debian or Amazon Linux).
#
# Packages, as in the connector documentation: libgfortran3, libsm6, libxext6, libxrender1, python-dev and
# python-pip on Ubuntu; compat-gcc-48-libgfortran, libSM, libXrender, libXext and python-pip on Amazon Linux; then
# numpy 1.15.0, scipy and opencv-python with pip. Where the distribution no longer ships Python 2, the Python 3
# equivalents are installed instead (and the distribution's own numpy, scipy and OpenCV builds, which match its
# Python 3; numpy 1.15.0 has no builds for current Python 3 versions).
#
# Usage: sudo bash x86_64.sh [--dry-run] [--upgrade] [--fix-libdc1394]    (needs common.sh next to it)
set -Eeuo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args "$@"
require_root "$@"

step "detect operating system"
read_os_release
echo "    ${OS_PRETTY} (ID=${OS_ID}, ID_LIKE=${OS_ID_LIKE:-none})"

if os_is ubuntu debian; then
  step "update package lists"
  apt_update
  step "upgrade system"
  if [ "$UPGRADE" -eq 1 ]; then do_run apt-get -y dist-upgrade; else skip_upgrade_note "apt-get dist-upgrade"; fi

  step "choose python"
  if apt_available python-dev || apt_installed python-dev; then
    PY_FLAVOUR=2
    echo "    Python 2 packages are available: python-dev, python-pip"
  else
    PY_FLAVOUR=3
    echo "    This release no longer ships Python 2; using python3-dev, python3-pip instead"
    note "the connector's own Lambda runtime was Python 2.7; icc serve does not need Python"
  fi

  step "install system libraries"
  libs=(libsm6 libxext6 libxrender1)
  if apt_available libgfortran3 || apt_installed libgfortran3; then
    libs=(libgfortran3 "${libs[@]}")
  else
    warn "libgfortran3 (libgfortran.so.3) is not packaged by ${OS_PRETTY}; the connector's bundled MXNet needs it."
    warn "icc serve (ONNX Runtime) does not. Install it from an older release if you run the original connector."
  fi
  apt_install "${libs[@]}"

  step "install python"
  if [ "$PY_FLAVOUR" -eq 2 ]; then
    apt_install python-dev python-pip
  else
    apt_install python3-dev python3-pip
  fi
elif os_is amzn; then
  step "update package lists"
  do_run yum -y makecache
  step "upgrade system"
  if [ "$UPGRADE" -eq 1 ]; then do_run yum -y upgrade; else skip_upgrade_note "yum upgrade"; fi

  step "choose python"
  if rpm_installed python-pip || yum_available python-pip; then
    PY_FLAVOUR=2
    echo "    Python 2 packages are available: python-pip"
  else
    PY_FLAVOUR=3
    echo "    This release no longer ships Python 2; using python3-devel, python3-pip instead"
  fi

  step "install system libraries"
  libs=(libSM libXrender libXext)
  if rpm_installed compat-gcc-48-libgfortran || yum_available compat-gcc-48-libgfortran; then
    libs=(compat-gcc-48-libgfortran "${libs[@]}")
  else
    warn "compat-gcc-48-libgfortran (libgfortran.so.3) is not packaged by ${OS_PRETTY}; the connector's bundled"
    warn "MXNet needs it, icc serve (ONNX Runtime) does not."
  fi
  yum_install "${libs[@]}"

  step "install python"
  if [ "$PY_FLAVOUR" -eq 2 ]; then
    yum_install python-pip
  else
    yum_install python3-devel python3-pip
  fi
else
  unsupported_os "x86_64.sh supports Ubuntu, Debian and their derivatives (apt) and Amazon Linux (yum)."
fi

step "install python modules"
if [ "$PY_FLAVOUR" -eq 2 ]; then
  pip_install pip numpy==1.15.0 scipy opencv-python
elif os_is ubuntu debian; then
  note "using the distribution's numpy/scipy/OpenCV for Python 3 (numpy 1.15.0 has no Python 3.8+ builds)"
  apt_install python3-numpy python3-scipy python3-opencv
else
  note "numpy 1.15.0 has no builds for current Python 3; installing numpy 1.x (MXNet 1.x needs numpy < 2)"
  pip_install pip3 'numpy<2' scipy opencv-python-headless
fi

fix_libdc1394
done_message
