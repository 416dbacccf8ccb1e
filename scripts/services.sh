#!/usr/bin/env bash
# Throwaway PostgreSQL, MariaDB and S3-compatible servers for the tests, on 127.0.0.1, data
# under build/services/, stopped by pid. Installs the servers (and Chromium, which opens
# the docs site headless) with apt if missing.
#   scripts/services.sh start   # prints nothing but errors; writes build/services/env
#   scripts/services.sh stop
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/build/services"
# A port nothing listens on, starting at $1 (another checkout may run its own servers).
free_port() {
  local p=$1
  while (echo > "/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

apt_install() {
  if [ "$(id -u)" != 0 ]; then echo "need root to apt-get install $*" >&2; return 1; fi
  if [ ! -f "$dir/.apt-updated" ]; then apt-get update -qq >/dev/null && mkdir -p "$dir" && touch "$dir/.apt-updated"; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_bin() {
  local b
  b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$b" ] || [ ! -x "$b/postgres" ]; then apt_install postgresql; b=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); fi
  echo "$b"
}

# A test CA and a server certificate it signed for 127.0.0.1, so both servers
# also speak TLS (clients verify against build/services/tls/ca.crt).
make_cert() {
  command -v openssl >/dev/null || apt_install openssl
  local t="$dir/tls"
  mkdir -p "$t"
  [ -f "$t/server.crt" ] && [ -f "$t/ca.crt" ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=dvt-test-ca -keyout "$t/ca.key" -out "$t/ca.crt" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$t/server.key" -out "$t/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$t/ext"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial -days 3650 -extfile "$t/ext" \
    -out "$t/server.crt" >/dev/null 2>&1
}

start_pg() {
  local bin; bin=$(pg_bin)
  local data="$dir/pg/data" sock="$dir/pg/sock"
  mkdir -p "$dir/pg" "$sock"
  if [ ! -f "$data/PG_VERSION" ]; then
    chown -R postgres:postgres "$dir/pg" 2>/dev/null || true
    runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres -A trust >/dev/null
  fi
  cp "$dir/tls/server.crt" "$dir/tls/server.key" "$dir/pg/"
  chmod 600 "$dir/pg/server.key"
  chown -R postgres:postgres "$dir/pg" 2>/dev/null || true
  if runuser -u postgres -- "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then return 0; fi
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$dir/pg/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $sock -c fsync=off -c ssl=on -c ssl_cert_file=$dir/pg/server.crt -c ssl_key_file=$dir/pg/server.key" \
    start >/dev/null
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qtc "select 1 from pg_database where datname = 'dvt'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "create database dvt" >/dev/null
}

stop_pg() {
  local bin data="$dir/pg/data"
  [ -f "$data/postmaster.pid" ] || return 0
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
}

start_maria() {
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server
  local bin=/usr/sbin/mariadbd data="$dir/maria/data"
  mkdir -p "$dir/maria"
  if [ -f "$dir/maria/pid" ] && kill -0 "$(cat "$dir/maria/pid")" 2>/dev/null; then return 0; fi
  if [ ! -d "$data/mysql" ]; then
    mariadb-install-db --no-defaults --user=root --datadir="$data" --auth-root-authentication-method=normal >/dev/null 2>&1
  fi
  "$bin" --no-defaults --user=root --datadir="$data" --socket="$dir/maria/sock" --pid-file="$dir/maria/pid" \
    --port="$MARIA_PORT" --bind-address=127.0.0.1 --skip-name-resolve --innodb-flush-log-at-trx-commit=0 \
    --local-infile=1 --ssl-cert="$dir/tls/server.crt" --ssl-key="$dir/tls/server.key" \
    --log-error="$dir/maria/log" >/dev/null 2>&1 &
  for _ in $(seq 1 60); do
    if mariadb --no-defaults -h 127.0.0.1 -P "$MARIA_PORT" -u root -e "select 1" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "MariaDB did not start; see $dir/maria/log" >&2
  return 1
}

stop_maria() {
  [ -f "$dir/maria/pid" ] || return 0
  local pid; pid=$(cat "$dir/maria/pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
}

# A local S3-compatible server (moto, from PyPI, in a venv under build/) with
# one bucket, `dvt-test`, for the bucket tests. Not a mock: it speaks S3's HTTP API.
start_s3() {
  local venv="$dir/moto"
  if [ ! -x "$venv/bin/moto_server" ]; then
    python3 -m venv "$venv" >/dev/null
    "$venv/bin/pip" install -q 'moto[server]==5.1.*' >/dev/null
  fi
  if [ -f "$dir/s3.pid" ] && kill -0 "$(cat "$dir/s3.pid")" 2>/dev/null; then return 0; fi
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$dir/s3.log" 2>&1 &
  echo $! > "$dir/s3.pid"
  for _ in $(seq 1 60); do
    if python3 -c "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:$S3_PORT/dvt-test', method='PUT'))" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "the S3 server did not start; see $dir/s3.log" >&2
  return 1
}

stop_s3() {
  [ -f "$dir/s3.pid" ] || return 0
  kill "$(cat "$dir/s3.pid")" 2>/dev/null || true
  rm -f "$dir/s3.pid"
}

case "${1:-}" in
  start)
    mkdir -p "$dir"
    # Reuse this checkout's running servers; otherwise take free ports.
    if [ -f "$dir/env" ] && [ -f "$dir/pg/data/postmaster.pid" ]; then . "$dir/env"; fi
    PG_PORT=${DVT_TEST_PG_PORT:-$(free_port 55432)}
    MARIA_PORT=${DVT_TEST_MARIA_PORT:-$(free_port 53306)}
    S3_PORT=${DVT_TEST_S3_PORT:-$(free_port 59000)}
    make_cert
    start_pg
    start_maria
    start_s3
    # Headless Chromium opens the docs site in the tests.
    command -v chromium >/dev/null || apt_install chromium
    cat > "$dir/env" <<ENV
export DVT_TEST_PG_PORT=$PG_PORT
export DVT_TEST_MARIA_PORT=$MARIA_PORT
export DVT_TEST_S3_PORT=$S3_PORT
export DVT_TEST_TLS_CA=$dir/tls/ca.crt
export DVT_TEST_CHROMIUM=$(command -v chromium)
ENV
    ;;
  stop)
    stop_pg
    stop_maria
    stop_s3
    rm -f "$dir/env"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
