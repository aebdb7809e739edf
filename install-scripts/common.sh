# shellcheck shell=bash
# Shared helpers of the icc dependency installers (x86_64.sh, armv7l.sh, nvidiajtx2.sh). Sourced, not run.
#
# Conventions every installer follows:
#   - each step is announced on stdout as "==> step: <name>" so a caller (icc install-deps) can name the step
#     that failed; a failure prints "==> failed: <name> (exit N)" on stderr;
#   - commands that change the system are run through `do_run`, which only prints them under --dry-run;
#   - packages are installed only when missing (dpkg -s / rpm -q / pip show), so a second run installs nothing;
#   - the system root can be moved for tests with ICC_ROOT (/etc/os-release, /etc/apt, /proc/device-tree,
#     /etc/dphys-swapfile, /dev and /usr/local/cuda are read or written under it).
#
# Exit codes: 0 done, 1 a step failed, 2 usage error, 3 unsupported system, 4 not running as root.

ICC_ROOT="${ICC_ROOT:-}"
# icc install-deps reads one stream so that warnings stay under the step that printed them.
if [ "${ICC_STDERR_TO_STDOUT:-}" = 1 ]; then exec 2>&1; fi
DRY_RUN=0
UPGRADE=0
INCREASE_SWAP=""
FIX_LIBDC1394=0
CURRENT_STEP="start"
export DEBIAN_FRONTEND=noninteractive

EXIT_STEP_FAILED=1
EXIT_USAGE=2
EXIT_UNSUPPORTED=3
EXIT_NOT_ROOT=4

usage() {
  cat <<USAGE
Usage: $(basename "$0") [--dry-run] [--upgrade] [--increase-swap[=MB]] [--fix-libdc1394] [--help]

Installs the system packages and Python modules that the Image Classification connector's MXNet runtime needs.

  --dry-run          print the steps and commands without changing anything (no root needed)
  --upgrade          also upgrade every installed package (apt-get dist-upgrade / yum upgrade); off by default
                     because a full upgrade can break a device's vendor kernel or drivers
  --increase-swap    Raspberry Pi: raise CONF_SWAPSIZE in /etc/dphys-swapfile (default 1024 MB) while scipy
                     is installed, then restore it
  --fix-libdc1394    create the /dev/raw1394 link to /dev/null that silences "Failed to initialize libdc1394"
                     (only if you do not use a FireWire camera; the link disappears at reboot)

Exit codes: 0 done, 1 a step failed, 2 usage error, 3 unsupported system, 4 not running as root.
USAGE
}

parse_args() {
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --dry-run) DRY_RUN=1 ;;
      --upgrade) UPGRADE=1 ;;
      --increase-swap) INCREASE_SWAP=1024 ;;
      --increase-swap=*)
        INCREASE_SWAP="${1#--increase-swap=}"
        if ! [[ "$INCREASE_SWAP" =~ ^[0-9]+$ ]]; then
          echo "error: --increase-swap needs a size in MB, e.g. --increase-swap=1024" >&2
          exit "$EXIT_USAGE"
        fi
        ;;
      --fix-libdc1394) FIX_LIBDC1394=1 ;;
      -h | --help)
        usage
        exit 0
        ;;
      *)
        echo "error: unknown option: $1" >&2
        usage >&2
        exit "$EXIT_USAGE"
        ;;
    esac
    shift
  done
}

on_error() {
  local rc=$1
  echo "==> failed: ${CURRENT_STEP} (exit ${rc})" >&2
  exit "$EXIT_STEP_FAILED"
}
trap 'on_error $?' ERR

step() {
  CURRENT_STEP="$1"
  echo "==> step: $1"
}

note() { echo "    note: $*"; }
warn() { echo "    warning: $*" >&2; }

# Run a command that changes the system (printed first; only printed under --dry-run).
do_run() {
  echo "    + $*"
  if [ "$DRY_RUN" -eq 0 ]; then
    "$@"
  fi
}

require_root() {
  if [ "$DRY_RUN" -eq 1 ]; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: this installer changes system packages and must run as root: sudo bash $0 $*" >&2
    echo "       (or pass --dry-run to only see the steps)" >&2
    exit "$EXIT_NOT_ROOT"
  fi
}

# Read ID, ID_LIKE, VERSION_ID, VERSION_CODENAME, UBUNTU_CODENAME and PRETTY_NAME from os-release without
# executing it: values may be quoted with " or '.
OS_ID=""
OS_ID_LIKE=""
OS_VERSION_ID=""
OS_CODENAME=""
OS_PRETTY=""
read_os_release() {
  local file="${ICC_ROOT}/etc/os-release"
  if [ ! -r "$file" ]; then file="${ICC_ROOT}/usr/lib/os-release"; fi
  if [ ! -r "$file" ]; then
    echo "error: cannot read ${ICC_ROOT}/etc/os-release: unknown operating system" >&2
    exit "$EXIT_UNSUPPORTED"
  fi
  local key value ubuntu_codename=""
  while IFS='=' read -r key value || [ -n "$key" ]; do
    value="${value%\"}"
    value="${value#\"}"
    value="${value%\'}"
    value="${value#\'}"
    case "$key" in
      ID) OS_ID="$(echo "$value" | tr '[:upper:]' '[:lower:]')" ;;
      ID_LIKE) OS_ID_LIKE="$(echo "$value" | tr '[:upper:]' '[:lower:]')" ;;
      VERSION_ID) OS_VERSION_ID="$value" ;;
      VERSION_CODENAME) OS_CODENAME="$value" ;;
      UBUNTU_CODENAME) ubuntu_codename="$value" ;;
      PRETTY_NAME) OS_PRETTY="$value" ;;
    esac
  done <"$file"
  if [ -n "$ubuntu_codename" ]; then OS_CODENAME="$ubuntu_codename"; fi
  if [ -z "$OS_PRETTY" ]; then OS_PRETTY="${OS_ID} ${OS_VERSION_ID}"; fi
}

# Is the OS (ID or one of ID_LIKE) one of the given ids?
os_is() {
  local want id
  for want in "$@"; do
    for id in $OS_ID $OS_ID_LIKE; do
      if [ "$id" = "$want" ]; then return 0; fi
    done
  done
  return 1
}

unsupported_os() {
  echo "error: unsupported operating system: ${OS_PRETTY} (ID=${OS_ID}, ID_LIKE=${OS_ID_LIKE:-none})." >&2
  echo "       $1" >&2
  echo "       See https://mxnet.apache.org/ to install the MXNet dependencies on this system by hand." >&2
  exit "$EXIT_UNSUPPORTED"
}

# --- apt -------------------------------------------------------------------------------------------------
apt_installed() { dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'; }
apt_available() { apt-cache show "$1" 2>/dev/null | grep -q "^Package: $1\$"; }

# Install the packages that are not installed yet.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    if apt_installed "$pkg"; then
      note "$pkg is already installed"
    else
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    do_run apt-get install -y "${missing[@]}"
  fi
}

apt_update() {
  do_run apt-get -y update
}

# --- yum -------------------------------------------------------------------------------------------------
rpm_installed() { rpm -q "$1" >/dev/null 2>&1; }
yum_available() { yum -q list "$1" >/dev/null 2>&1; }

yum_install() {
  local missing=() pkg
  for pkg in "$@"; do
    if rpm_installed "$pkg"; then
      note "$pkg is already installed"
    else
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    do_run yum install -y "${missing[@]}"
  fi
}

# --- python ----------------------------------------------------------------------------------------------
# PY_FLAVOUR is 2 when the distribution still ships Python 2 packages, else 3.
PY_FLAVOUR=3

# pip_install PIP SPEC...: install each requirement unless `PIP show` reports a matching version.
pip_install() {
  local pip="$1" missing=() spec name want have
  shift
  for spec in "$@"; do
    name="${spec%%[=<>]*}"
    want=""
    if [[ "$spec" == *==* ]]; then want="${spec#*==}"; fi
    have="$("$pip" show "$name" 2>/dev/null | awk -F': ' '/^Version:/{print $2}' || true)"
    if [ -n "$have" ] && { [ -z "$want" ] || [ "$have" = "$want" ]; }; then
      note "$name $have is already installed"
    else
      missing+=("$spec")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    do_run "$pip" install "${missing[@]}"
  fi
}

# Python 2 pip from get-pip.py, only when pip is missing (the 2.7 build of get-pip.py: the current one needs
# Python 3).
ensure_pip2() {
  if command -v pip >/dev/null 2>&1 && pip --version 2>/dev/null | grep -q 'python 2'; then
    note "pip for Python 2 is already installed"
    return 0
  fi
  local tmp="${TMPDIR:-/tmp}/icc-get-pip.py"
  do_run wget -q -O "$tmp" https://bootstrap.pypa.io/pip/2.7/get-pip.py
  do_run python "$tmp"
  do_run rm -f "$tmp"
}

skip_upgrade_note() {
  note "skipping '$1' (pass --upgrade to run it; a full upgrade can replace a device's vendor kernel or drivers)"
}

fix_libdc1394() {
  local link="${ICC_ROOT}/dev/raw1394"
  if [ "$FIX_LIBDC1394" -eq 1 ]; then
    step "libdc1394 workaround"
    if [ -e "$link" ] || [ -L "$link" ]; then
      note "$link already exists"
    else
      do_run ln -s /dev/null "$link"
      note "the link disappears at reboot; recreate it at boot (e.g. a systemd-tmpfiles or udev rule) if needed"
    fi
  else
    note "if the connector logs 'Failed to initialize libdc1394' and you use no FireWire camera, re-run with"
    note "--fix-libdc1394 (or run: sudo ln -s /dev/null /dev/raw1394; it lasts until reboot)"
  fi
}

done_message() {
  step "done"
  if [ "$DRY_RUN" -eq 1 ]; then
    echo "Dry run: nothing was changed."
  else
    echo "Dependency installation complete."
  fi
}
