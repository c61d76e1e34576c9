#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on a random loopback port, for CI and the benches; sourced:
#   . scripts/throwaway-postgres.sh
#   start_throwaway_postgres DIR [SETTING...]  initdb into DIR/pg and start it (trust auth, socket in
#                                              DIR); each SETTING goes to `-c` (e.g. fsync=off).
#                                              Tries other ports if one is taken. Sets PG_PORT, PG_URL.
#   stop_throwaway_postgres DIR                fast shutdown; never fails.
# Needs Debian's postgresql package (any version under /usr/lib/postgresql). As root, the server
# runs as the postgres user (initdb refuses root).

as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

throwaway_postgres_bin() {
  dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)"
}

start_throwaway_postgres() {
  local dir=$1; shift
  local bin settings="-c listen_addresses=127.0.0.1" attempt
  bin=$(throwaway_postgres_bin)
  for setting in "$@"; do settings+=" -c $setting"; done
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  as_postgres "$bin/initdb" -D "$dir/pg" -A trust -U postgres >/dev/null
  for attempt in 1 2 3 4 5; do
    PG_PORT=$(shuf -i 20000-60000 -n 1)
    if as_postgres "$bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w -o "-p $PG_PORT -k $dir $settings" \
        start >/dev/null; then
      PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
      return 0
    fi
  done
  cat "$dir/pg.log" >&2
  return 1
}

stop_throwaway_postgres() {
  as_postgres "$(throwaway_postgres_bin)/pg_ctl" -D "$1/pg" -m fast stop >/dev/null 2>&1 || true
}
