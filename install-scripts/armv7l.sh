#!/usr/bin/env bash
# icc: MXNet dependencies of the Image Classification ARMv7 connector (Raspberry Pi: Raspbian / Raspberry Pi OS).
#
# Packages, as in the connector documentation: liblapack3, libopenblas-dev, liblapack-dev and python-dev; then
# python-opencv (which needs the old python-numpy package: it is installed first and removed again, keeping
# python-opencv), pip from get-pip.py, and numpy 1.15.0, picamera and scipy with pip. Where the distribution no
# longer ships Python 2, the Python 3 packages are used instead (python3-dev, python3-numpy, python3-opencv,
# python3-scipy, python3-picamera when packaged).
#
# Installing scipy with pip can exhaust a Pi's memory; --increase-swap raises the swap size for that step.
#
# Usage: sudo bash armv7l.sh [--dry-run] [--upgrade] [--increase-swap[=MB]] [--fix-libdc1394]
set -Eeuo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args "$@"
require_root "$@"

step "detect operating system"
read_os_release
echo "    ${OS_PRETTY} (ID=${OS_ID}, ID_LIKE=${OS_ID_LIKE:-none})"
if ! os_is raspbian debian ubuntu; then
  unsupported_os "armv7l.sh supports Raspbian / Raspberry Pi OS and other Debian-based systems (apt)."
fi

step "update package lists"
apt_update
step "upgrade system"
if [ "$UPGRADE" -eq 1 ]; then do_run apt-get -y upgrade; else skip_upgrade_note "apt-get upgrade"; fi

step "choose python"
if apt_available python-dev || apt_installed python-dev; then
  PY_FLAVOUR=2
  echo "    Python 2 packages are available: python-dev, python-opencv"
else
  PY_FLAVOUR=3
  echo "    This release no longer ships Python 2; using python3-dev, python3-opencv instead"
fi

step "install math libraries"
if [ "$PY_FLAVOUR" -eq 2 ]; then
  apt_install liblapack3 libopenblas-dev liblapack-dev python-dev
else
  apt_install liblapack3 libopenblas-dev liblapack-dev python3-dev
fi

SWAP_FILE="${ICC_ROOT}/etc/dphys-swapfile"
SWAP_ORIGINAL=""
restart_swap() { do_run "${ICC_ROOT}/etc/init.d/dphys-swapfile" restart; }
increase_swap() {
  if [ -z "$INCREASE_SWAP" ]; then
    note "pip builds scipy on the Pi and can run it out of memory. If the device becomes unresponsive,"
    note "increase CONF_SWAPSIZE in /etc/dphys-swapfile and run /etc/init.d/dphys-swapfile restart, or re-run"
    note "this installer with --increase-swap (it raises the swap to 1024 MB for this step, then restores it)."
    return 0
  fi
  if [ ! -f "$SWAP_FILE" ]; then
    warn "$SWAP_FILE not found: cannot increase the swap size (is dphys-swapfile installed?)"
    return 0
  fi
  SWAP_ORIGINAL="$(awk -F= '/^CONF_SWAPSIZE=/{print $2}' "$SWAP_FILE")"
  echo "    CONF_SWAPSIZE ${SWAP_ORIGINAL:-unset} -> ${INCREASE_SWAP}"
  if [ -n "$SWAP_ORIGINAL" ]; then
    do_run sed -i "s/^CONF_SWAPSIZE=.*/CONF_SWAPSIZE=${INCREASE_SWAP}/" "$SWAP_FILE"
  else
    SWAP_ORIGINAL="none"
    do_run sed -i "\$a CONF_SWAPSIZE=${INCREASE_SWAP}" "$SWAP_FILE"
  fi
  restart_swap
}
restore_swap() {
  if [ -z "$SWAP_ORIGINAL" ]; then return 0; fi
  step "restore swap size"
  if [ "$SWAP_ORIGINAL" = "none" ]; then
    do_run sed -i '/^CONF_SWAPSIZE=/d' "$SWAP_FILE"
  else
    do_run sed -i "s/^CONF_SWAPSIZE=.*/CONF_SWAPSIZE=${SWAP_ORIGINAL}/" "$SWAP_FILE"
  fi
  restart_swap
}

if [ "$PY_FLAVOUR" -eq 2 ]; then
  step "install opencv"
  # python-opencv depends on the distribution's old python-numpy: install both, then remove python-numpy
  # (keeping python-opencv) so that pip's numpy 1.15 is the one imported. Skipped once python-opencv is there.
  if apt_installed python-opencv; then
    note "python-opencv is already installed"
  else
    apt_install python-numpy python-opencv
    do_run dpkg --remove --force-depends python-numpy
  fi

  step "install pip"
  ensure_pip2

  step "increase swap"
  increase_swap
  step "install python modules"
  pip_install pip numpy==1.15.0 picamera scipy
  restore_swap
else
  step "install python modules"
  note "using the distribution's numpy/scipy/OpenCV for Python 3 (numpy 1.15.0 has no Python 3.8+ builds);"
  note "apt installs prebuilt scipy, so no extra swap is needed"
  mods=(python3-numpy python3-opencv python3-scipy)
  if apt_available python3-picamera || apt_installed python3-picamera; then
    mods+=(python3-picamera)
  else
    note "python3-picamera is not packaged by ${OS_PRETTY} (use the camera through python3-picamera2 or OpenCV)"
  fi
  apt_install "${mods[@]}"
fi

fix_libdc1394
done_message
