#!/bin/bash
# Entrypoint of the odoo:17 stand-in, as the official image's: the database connection comes from HOST, PORT,
# USER, PASSWORD (or PASSWORD_FILE) unless the config file sets it; arguments starting with `-` or after `--` go to odoo.
set -e

if [ -v PASSWORD_FILE ]; then PASSWORD="$(< "$PASSWORD_FILE")"; fi
: "${HOST:=${DB_PORT_5432_TCP_ADDR:='db'}}"
: "${PORT:=${DB_PORT_5432_TCP_PORT:=5432}}"
: "${USER:=${DB_ENV_POSTGRES_USER:=${POSTGRES_USER:='odoo'}}}"
: "${PASSWORD:=${DB_ENV_POSTGRES_PASSWORD:=${POSTGRES_PASSWORD:='odoo'}}}"

DB_ARGS=()
check_config() {
  local param="$1" value="$2"
  if grep -q -E "^\s*\b${param}\b\s*=" "$ODOO_RC"; then
    value=$(grep -E "^\s*\b${param}\b\s*=" "$ODOO_RC" | cut -d " " -f3 | sed 's/["\n\r]//g')
  fi
  DB_ARGS+=("--${param}" "${value}")
}
check_config db_host "$HOST"
check_config db_port "$PORT"
check_config db_user "$USER"
check_config db_password "$PASSWORD"

case "${1:-}" in
  -- | odoo)
    shift
    exec odoo "$@" "${DB_ARGS[@]}"
    ;;
  -*)
    exec odoo "$@" "${DB_ARGS[@]}"
    ;;
  *)
    exec "$@"
    ;;
esac
