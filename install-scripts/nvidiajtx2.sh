#!/usr/bin/env bash
# icc: MXNet dependencies of the Image Classification Aarch64 JTX2 connector (NVIDIA Jetson TX2, Ubuntu 16.04
# from JetPack).
#
# Before it: CUDA Toolkit 9.0 and cuDNN 7 (JetPack) and the universe repositories enabled in
# /etc/apt/sources.list; this script checks both and warns with what to do. Packages, as in the connector
# documentation: liblapack3, libopenblas-dev, liblapack-dev, libatlas-base-dev and python-dev, pip from
# get-pip.py, then numpy 1.15.0 and scipy with pip (Python 3 equivalents where Python 2 is no longer shipped).
#
# Usage: sudo bash nvidiajtx2.sh [--dry-run] [--upgrade] [--fix-libdc1394]
set -Eeuo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args "$@"
require_root "$@"

step "detect operating system"
read_os_release
echo "    ${OS_PRETTY} (ID=${OS_ID}, ID_LIKE=${OS_ID_LIKE:-none})"
if ! os_is ubuntu; then
  unsupported_os "nvidiajtx2.sh supports the Ubuntu system of NVIDIA JetPack (Ubuntu 16.04 on the Jetson TX2)."
fi
if [ "$OS_VERSION_ID" != "16.04" ]; then
  note "the connector was built for Ubuntu 16.04 (JetPack 3.x); this is ${OS_PRETTY}"
fi

step "check CUDA and cuDNN"
cuda_ok=0
for f in "${ICC_ROOT}/usr/local/cuda-9.0/version.txt" "${ICC_ROOT}/usr/local/cuda/version.txt"; do
  if [ -r "$f" ] && grep -q 'CUDA Version 9\.0' "$f"; then cuda_ok=1; fi
done
if [ -d "${ICC_ROOT}/usr/local/cuda-9.0" ]; then cuda_ok=1; fi
if [ "$cuda_ok" -eq 1 ]; then
  echo "    CUDA 9.0 found"
else
  warn "CUDA Toolkit 9.0 was not found under /usr/local/cuda-9.0: install it with JetPack 3.2/3.3 (the connector's"
  warn "MXNet needs libcudart.so.9.0, libcublas.so.9.0, libcufft.so.9.0, libcurand.so.9.0, libcusolver.so.9.0)."
fi
cudnn_ok=0
for d in /usr/lib/aarch64-linux-gnu /usr/local/cuda/lib64 /usr/local/cuda-9.0/lib64; do
  if [ -e "${ICC_ROOT}${d}/libcudnn.so.7" ]; then cudnn_ok=1; fi
done
if [ "$cudnn_ok" -eq 1 ]; then
  echo "    cuDNN 7 found"
else
  warn "cuDNN 7 (libcudnn.so.7) was not found: install it with JetPack 3.2/3.3."
fi

step "check universe repositories"
codename="${OS_CODENAME:-xenial}"
lists=("${ICC_ROOT}/etc/apt/sources.list")
if [ -d "${ICC_ROOT}/etc/apt/sources.list.d" ]; then
  while IFS= read -r f; do lists+=("$f"); done < <(find "${ICC_ROOT}/etc/apt/sources.list.d" -name '*.list' 2>/dev/null)
fi
missing_lines=()
for suite in "$codename" "${codename}-updates"; do
  for kind in deb deb-src; do
    if ! grep -Eqs "^[[:space:]]*${kind}[[:space:]]+(\[[^]]*\][[:space:]]+)?\S+[[:space:]]+${suite}[[:space:]]+(\S+[[:space:]]+)*universe([[:space:]]|\$)" "${lists[@]}"; then
      missing_lines+=("${kind} http://ports.ubuntu.com/ubuntu-ports/ ${suite} universe")
    fi
  done
done
if [ "${#missing_lines[@]}" -eq 0 ]; then
  echo "    universe repositories are enabled"
else
  warn "the universe repositories are not all enabled. In /etc/apt/sources.list, make sure these lines exist"
  warn "and are not commented out, then re-run this installer:"
  for line in "${missing_lines[@]}"; do warn "    $line"; done
fi

step "update package lists"
apt_update
step "upgrade system"
if [ "$UPGRADE" -eq 1 ]; then do_run apt-get -y dist-upgrade; else skip_upgrade_note "apt-get dist-upgrade"; fi

step "choose python"
if apt_available python-dev || apt_installed python-dev; then
  PY_FLAVOUR=2
  echo "    Python 2 packages are available: python-dev"
else
  PY_FLAVOUR=3
  echo "    This release no longer ships Python 2; using python3-dev instead"
fi

step "install math libraries"
if [ "$PY_FLAVOUR" -eq 2 ]; then
  apt_install liblapack3 libopenblas-dev liblapack-dev libatlas-base-dev python-dev
else
  apt_install liblapack3 libopenblas-dev liblapack-dev libatlas-base-dev python3-dev
fi

if [ "$PY_FLAVOUR" -eq 2 ]; then
  step "install pip"
  ensure_pip2
  step "install python modules"
  pip_install pip numpy==1.15.0 scipy
else
  step "install python modules"
  note "using the distribution's numpy/scipy for Python 3 (numpy 1.15.0 has no Python 3.8+ builds)"
  apt_install python3-numpy python3-scipy
fi

fix_libdc1394
done_message
