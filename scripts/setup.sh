#!/usr/bin/env bash
# Installs everything multinet needs on a fresh Debian 12 machine (idempotent, quick when already done):
# Debian packages, pinned Python packages, gRPC stubs generated from proto/, and the multinetctl command.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}

APT_PACKAGES=(iproute2 nftables podman runc containernetworking-plugins etcd-server etcd-client gobgpd bird2
  golang-github-osrg-gobgp-dev iperf3 tcpdump busybox-static sqlite3 iputils-ping procps iptables libnftables1)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts etcd as a service on install; tests start their own on loopback.
if command -v systemctl >/dev/null && systemctl is-active -q etcd 2>/dev/null; then systemctl stop etcd || true; fi

if ! "$PY" - <<'PYEOF' 2>/dev/null
import importlib.metadata as md, re, sys
for line in open("requirements-dev.txt"):
    line = line.split("#")[0].strip()
    if not line or line.startswith("-r"): continue
    name, version = re.split(r"==", line)
    if md.version(name) != version: sys.exit(1)
for line in open("requirements.txt"):
    line = line.split("#")[0].strip()
    if not line: continue
    name, version = re.split(r"==", line)
    if md.version(name) != version: sys.exit(1)
PYEOF
then
  echo "setup: installing Python packages"
  "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -r requirements-dev.txt
fi

# The native build of the CNI shim (same protocol as cni/multinet.py, starts ~6 ms sooner); optional: without a C
# compiler, install-cni falls back to the Python shim.
if command -v cc >/dev/null 2>&1; then
  mkdir -p cni/build
  if [ ! -x cni/build/multinet ] || [ cni/multinet.c -nt cni/build/multinet ]; then
    cc -O2 -Wall -Wextra -Werror -static -o cni/build/multinet.tmp cni/multinet.c 2>/dev/null \
      || cc -O2 -Wall -Wextra -Werror -o cni/build/multinet.tmp cni/multinet.c
    mv cni/build/multinet.tmp cni/build/multinet
  fi
fi

# gRPC stubs (and their type stubs) from proto/: generated, never committed.
"$PY" -m grpc_tools.protoc -Iproto --python_out=proto --grpc_python_out=proto --mypy_out=quiet:proto \
  --mypy_grpc_out=quiet:proto proto/multinet/v1/*.proto

# Make this checkout importable (services, multinetctl, generated multinet.v1) and put multinetctl on PATH.
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n%s\n' "$ROOT" "$ROOT/proto" > "$SITE/multinet-checkout.pth"
cat > /usr/local/bin/multinetctl <<WRAP
#!$("$PY" -c 'import sys; print(sys.executable)')
import sys
sys.path[:0] = ["$ROOT", "$ROOT/proto"]
from multinetctl.__main__ import main
sys.exit(main())
WRAP
chmod 755 /usr/local/bin/multinetctl
