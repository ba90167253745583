# Shared by scripts/test and scripts/lab: system tools (as root, from Debian) and .venv.
# Usage: source scripts/setup.sh; setup_system; setup_venv [EXTRAS]

say() { printf '\n== %s\n' "$*"; }

setup_system() {
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "not root (or no apt-get): skipping system packages"
    return 0
  fi
  local need=() tool
  # The real-node lab adds containerd, runc and the CNI plugins (the nodes), buildah and
  # mmdebstrap (the images, no registry needed) and gcc (the pause binary).
  for tool in ip:iproute2 tcpdump:tcpdump curl:curl arping:arping iptables:iptables \
              conntrack:conntrack openssl:openssl ping:iputils-ping promtool:prometheus \
              nsenter:util-linux containerd:containerd runc:runc buildah:buildah \
              mmdebstrap:mmdebstrap gcc:gcc; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
  done
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The prometheus package (promtool and the server the alert tests run on loopback) would
    # start a server on :9090 for good; deny service starts for this install (policy-rc.d).
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    if [ -n "$made_policy" ]; then rm -f "$policy"; fi
  fi
}

setup_venv() {
  local extras=${1:-}
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "${PYTHON:-python3}" -m venv .venv
  fi
  say "installing lbctl${extras:+ with [$extras]} into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
}
