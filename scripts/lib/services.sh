# shellcheck shell=bash
# Helpers shared by scripts/bench.sh and scripts/soak.sh, sourced (not run): free
# loopback ports, waiting for a port, stopping processes by pid, and a throwaway Redis
# and PostgreSQL in a temp dir. The caller keeps the pids and stops them on exit.

free_ports() { # n: n free TCP ports on loopback
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

wait_port() { # port: whether something accepts on 127.0.0.1:port within 30 s
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

stop() { # pid...: SIGTERM, then SIGKILL after 5 s
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.1
  done
  for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
}

pg_bin_dir() { # PostgreSQL's versioned bin directory (Debian keeps initdb off PATH)
  printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1
}

start_redis() { # dir port: a Redis without persistence; sets redis_pid
  redis-server --port "$2" --bind 127.0.0.1 --save "" --appendonly no >"$1/redis.log" 2>&1 &
  redis_pid=$!
}

start_postgres() { # dir port: a fresh cluster in dir/pg; sets postgres_pid (the
  # launcher's, as root `runuser`) — the postmaster's pid is in dir/pg/data/postmaster.pid
  # once the port accepts (see postmaster_pid).
  local pg_bin as_pg=()
  pg_bin=$(pg_bin_dir)
  mkdir "$1/pg"
  if [ "$(id -u)" = 0 ]; then # PostgreSQL refuses to run as root
    chmod 711 "$1"
    chown postgres "$1/pg"
    as_pg=(runuser -u postgres --)
  fi
  "${as_pg[@]}" "$pg_bin/initdb" -D "$1/pg/data" -A trust -U postgres --no-sync >"$1/initdb.log" 2>&1
  "${as_pg[@]}" "$pg_bin/postgres" -D "$1/pg/data" -p "$2" -k "$1/pg" \
    -c listen_addresses=127.0.0.1 -c fsync=off >"$1/postgres.log" 2>&1 &
  postgres_pid=$!
}

postmaster_pid() { # dir: the running postmaster's pid (SIGINT to it is a fast shutdown)
  head -n 1 "$1/pg/data/postmaster.pid"
}
