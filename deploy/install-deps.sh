#!/usr/bin/env bash
# Installs the Debian packages Tributary builds and tests with, when they are missing.
# Usage: deploy/install-deps.sh [--test | --bench | --deploy]
#   --test    adds what the test command lints deploy/'s scripts with, and the browser and
#             Prometheus the operations page, dashboard and alert rules are tested against
#   --bench   adds what the benchmarks compare with and measure by
#   --deploy  adds what deploy/check-deploy.sh checks the production files with
set -euo pipefail
packages=(postgresql-15 postgresql-contrib libpq-dev libisal-dev libssl-dev libcurl4-openssl-dev pkg-config python3 python3-cryptography curl)
[ "${1:-}" = "--test" ] && packages+=(shellcheck chromium prometheus)
[ "${1:-}" = "--bench" ] && packages+=(pgcopydb bc rclone time python3-venv)
[ "${1:-}" = "--deploy" ] && packages+=(systemd kubectl python3-venv binutils)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "install-deps.sh: missing ${missing[*]}: run as root or install them" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a default cluster on 5432 when the server is installed; the project never uses it.
