#!/usr/bin/env bash
# End-to-end tests of corral in real Docker containers (issue 4). Builds a
# FROM scratch image holding the static corral, the svctl link and Debian's
# static busybox, and Debian images made with debootstrap (real daemons; a
# Rust builder for Dockerfile.example), then runs each test and prints
# `N passed, N failed`. No registry is needed: nothing is pulled.
#
#   bash tests/docker/run.sh [TEST...]
# Skips (exit 0, with the reason) when no Docker engine answers.
set -u
cd "$(dirname "$0")/../.."
if ! timeout 20 docker info >/dev/null 2>&1; then
  echo "docker e2e: skipped: no Docker engine answers (docker info)"
  exit 0
fi
img=corral-e2e:scratch
work=$(mktemp -d /tmp/corral-e2e.XXXXXX)
# Every container of this run carries this label, so cleanup finds them
# (run_d runs in command substitutions: no shared shell state).
label=corral-e2e=$$
cleanup() {
  docker ps -aq --filter "label=$label" | xargs -r docker rm -f >/dev/null 2>&1
  # The images this run built (about 1.5 GB with the builder stage); only
  # the debootstrapped bases stay, so repeated runs do not fill the disk.
  docker rmi -f "$img" corral-e2e:daemons corral-e2e:example corral-e2e:acng corral-e2e:unbound >/dev/null 2>&1
  [ -s "$work/built-images" ] && xargs -r docker rmi < "$work/built-images" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# --- the image -------------------------------------------------------------
build_image() {
  bash scripts/release-build -q >/dev/null || return 1
  local stage=$work/stage
  mkdir -p "$stage"/{bin,etc/corral/services.d,tmp,run,root}
  chmod 1777 "$stage/tmp"
  cp target/static/corral "$stage/bin/corral"
  ln -s corral "$stage/bin/svctl"
  local deb
  deb=$(ls "$work"/busybox-static_*.deb 2>/dev/null | head -1)
  if [ -z "$deb" ]; then
    (cd "$work" && apt-get download busybox-static >/dev/null 2>&1) \
      || { apt-get update -qq && (cd "$work" && apt-get download busybox-static >/dev/null); } || return 1
    deb=$(ls "$work"/busybox-static_*.deb | head -1)
  fi
  dpkg-deb -x "$deb" "$work/bb"
  cp "$work/bb/bin/busybox" "$stage/bin/busybox"
  for applet in $("$stage/bin/busybox" --list); do
    [ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
  done
  cat > "$stage/etc/passwd" <<PW
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/tmp:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
  cat > "$stage/etc/group" <<GR
root:x:0:
app:x:1000:
nogroup:x:65534:
GR
  cat > "$work/Dockerfile" <<DF
FROM scratch
COPY stage/ /
ENV PATH=/bin
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/corral"]
DF
  docker build -q -t "$img" "$work" >/dev/null 2>&1
}

# debian_image, debian_base, rust_builder and example_image: shared with
# the script that builds Dockerfile.example for users without a registry.
. tests/docker/example-image.sh

daemon_image() { # the example: nginx and cron under corral
  local base; base=$(debian_base) || return 1
  local ctx=$work/daemons
  mkdir -p "$ctx/services.d" "$ctx/cron.d"
  cp target/static/corral "$ctx/corral"
  cp examples/nginx-cron/services.d/*.toml "$ctx/services.d/"
  printf '* * * * * root echo cron-ran > /tmp/cron-ran\n' > "$ctx/cron.d/e2e"
  cat > "$ctx/Dockerfile" <<DF
FROM $base
COPY corral /usr/local/bin/corral
RUN ln -s corral /usr/local/bin/svctl
COPY services.d/ /etc/corral/services.d/
COPY cron.d/e2e /etc/cron.d/e2e
RUN chmod 644 /etc/cron.d/e2e && corral check
ENTRYPOINT ["/usr/local/bin/corral"]
DF
  docker build -q -t corral-e2e:daemons "$ctx" >/dev/null 2>&1 && echo corral-e2e:daemons
}

# examples/apt-cacher-ng: the proxy with its daily jobs as corral schedules,
# built from its own Dockerfile on a debootstrapped bookworm that has the
# packages (so its apt-get finds them installed).
acng_image() {
  local base; base=$(debian_image bookworm "apt-cacher-ng,logrotate,busybox") || return 1
  local ctx=$work/acng
  mkdir -p "$ctx"
  cp -r examples/apt-cacher-ng/Dockerfile examples/apt-cacher-ng/services.d "$ctx/"
  cp target/static/corral "$ctx/corral"
  docker build -q --build-arg BASE="$base" -t corral-e2e:acng "$ctx" > "$work/acng-build.log" 2>&1 \
    || { tail -15 "$work/acng-build.log" >&2; return 1; }
  echo corral-e2e:acng
}

# examples/unbound: the resolver with validate, update and reload actions,
# built from its own Dockerfile the same way.
unbound_image() {
  local base; base=$(debian_image bookworm "unbound,curl,ca-certificates,busybox") || return 1
  local ctx=$work/unbound
  mkdir -p "$ctx"
  cp -r examples/unbound/Dockerfile examples/unbound/unbound.conf examples/unbound/services.d "$ctx/"
  cp target/static/corral "$ctx/corral"
  docker build -q --build-arg BASE="$base" -t corral-e2e:unbound "$ctx" > "$work/unbound-build.log" 2>&1 \
    || { tail -15 "$work/unbound-build.log" >&2; return 1; }
  echo corral-e2e:unbound
}

# --- helpers ---------------------------------------------------------------
# services NAME: a fresh services directory $work/NAME, files from stdin as
# `=== file.toml` sections.
services() {
  local dir=$work/$1 file=""
  mkdir -p "$dir"
  while IFS= read -r line; do
    case "$line" in
      "=== "*) file=$dir/${line#=== } ; : > "$file" ;;
      *) printf '%s\n' "$line" >> "$file" ;;
    esac
  done
  echo "$dir"
}
run_d() { # NAME ARGS...: docker run -d, labelled for cleanup
  local name=corral-e2e-$1-$$; shift
  docker run -d --label "$label" --name "$name" "$@" >/dev/null && echo "$name"
}
until_true() { # SECONDS COMMAND...: retry every 0.1 s
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
running_count() { docker exec "$1" svctl status --json 2>/dev/null | grep -o '"state":"running"' | wc -l; }
# Each test runs in its own subshell ($(...) in the runner): the first
# failed check ends it, so a later passing check cannot hide it.
fail() { echo "    $*"; exit 1; }

# --- tests -----------------------------------------------------------------
three_services() {
  local dir c
  dir=$(services three <<'S'
=== db.toml
run = "trap 'echo db-term; exit 0' TERM; echo db up; while :; do sleep 0.05; done"
=== app.toml
run = "trap 'echo app-term; exit 0' TERM; echo app as $(id -un); while :; do sleep 0.05; done"
requires = ["db"]
user = "nobody"
=== web.toml
run = "trap 'echo web-term; exit 0' TERM; echo web as $(id -un); while :; do sleep 0.05; done"
requires = ["app"]
user = "app"
S
)
  c=$(run_d three -v "$dir:/etc/corral/services.d:ro" "$img") || fail "docker run"
  until_true 10 sh -c "[ \$(docker exec $c svctl status --json 2>/dev/null | grep -o '\"state\":\"running\"' | wc -l) = 3 ]" \
    || fail "three services running: $(docker exec "$c" svctl status 2>&1)"
  local st; st=$(docker exec "$c" svctl status --json)
  echo "$st" | grep -q '"name":"app"[^}]*"user":"nobody"' || fail "app as nobody: $st"
  echo "$st" | grep -q '"name":"web"[^}]*"user":"app"' || fail "web as app: $st"
  until_true 5 sh -c "docker logs $c 2>&1 | grep -q 'web | web as app'" || fail "logs: $(docker logs "$c" 2>&1)"
  docker logs "$c" 2>&1 | grep -q '^db  | db up$' || fail "prefixed db line: $(docker logs "$c" 2>&1)"
  docker logs "$c" 2>&1 | grep -q '^app | app as nobody$' || fail "prefixed app line"
  # docker stop: fast, in reverse order, exit 0.
  local t0 t1; t0=$(date +%s%N)
  docker stop "$c" >/dev/null
  t1=$(date +%s%N)
  local ms=$(( (t1 - t0) / 1000000 ))
  echo "    docker stop took $ms ms"
  [ "$ms" -lt 3000 ] || fail "docker stop took $ms ms"
  local order; order=$(docker logs "$c" 2>&1 | grep -o '[a-z]*-term' | tr '\n' ' ')
  [ "$order" = "web-term app-term db-term " ] || fail "TERM order: $order"
  [ "$(docker inspect -f '{{.State.ExitCode}}' "$c")" = 0 ] || fail "exit code $(docker inspect -f '{{.State.ExitCode}}' "$c")"
}

stubborn_service_is_killed_in_time() {
  local dir c
  dir=$(services stubborn <<'S'
=== stuck.toml
run = "trap '' TERM; echo ignoring; while :; do sleep 0.05; done"
stop_timeout = "1s"
S
)
  c=$(run_d stubborn -v "$dir:/etc/corral/services.d:ro" "$img") || fail "docker run"
  until_true 10 sh -c "docker logs $c 2>&1 | grep -q ignoring" || fail "service up"
  local t0 t1; t0=$(date +%s%N); docker stop "$c" >/dev/null; t1=$(date +%s%N)
  local ms=$(( (t1 - t0) / 1000000 ))
  echo "    docker stop took $ms ms (stop_timeout 1 s)"
  [ "$ms" -ge 1000 ] && [ "$ms" -lt 5000 ] || fail "took $ms ms"
  [ "$(docker inspect -f '{{.State.ExitCode}}' "$c")" = 1 ] || fail "exit code should be 1 (a SIGKILL was needed)"
}

main_command_exit_codes() {
  docker run --rm --label "$label" "$img" -- sh -c 'exit 3' >/dev/null 2>&1
  local rc=$?
  [ "$rc" = 3 ] || fail "docker run -- sh -c 'exit 3' gave $rc"
  local c; c=$(run_d tini "$img" -- sleep 1000) || fail "docker run"
  until_true 5 sh -c "docker top $c 2>/dev/null | grep -q 'sleep 1000'" || fail "sleep started"
  docker kill -s TERM "$c" >/dev/null
  rc=$(docker wait "$c")
  [ "$rc" = 143 ] || fail "tini mode TERM gave $rc"
}

exec_orphans_are_reaped() {
  local c; c=$(run_d orphans "$img" -- sleep 1000) || fail "docker run"
  docker exec -d "$c" sh -c 'sleep 1 & exit'
  sleep 2.5
  local zombies; zombies=$(docker exec "$c" sh -c 'cat /proc/[0-9]*/stat 2>/dev/null' | awk '{print $3}' | grep -c Z)
  [ "$zombies" = 0 ] || fail "$zombies zombies: $(docker exec "$c" ps)"
}

healthcheck_follows_svctl_health() {
  local dir c
  dir=$(services health <<'S'
=== db.toml
command = ["sleep", "1000"]
restart = "never"
S
)
  c=$(run_d health --health-cmd "svctl health" --health-interval 1s --health-retries 1 --health-timeout 2s \
      -v "$dir:/etc/corral/services.d:ro" "$img") || fail "docker run"
  until_true 20 sh -c "[ \$(docker inspect -f '{{.State.Health.Status}}' $c) = healthy ]" \
    || fail "healthy: $(docker inspect -f '{{json .State.Health}}' "$c")"
  # A service that dies (not one stopped on purpose) makes it unhealthy.
  docker exec "$c" svctl signal KILL db >/dev/null || fail "svctl signal"
  until_true 20 sh -c "[ \$(docker inspect -f '{{.State.Health.Status}}' $c) = unhealthy ]" \
    || fail "unhealthy: $(docker inspect -f '{{json .State.Health}}' "$c")"
}

random_uid_and_read_only_root() {
  local dir c
  dir=$(services rouid <<'S'
=== db.toml
run = "echo db as $(id -u); exec sleep 1000"
S
)
  c=$(run_d uid --user 12345:12345 -v "$dir:/etc/corral/services.d:ro" "$img") || fail "docker run --user"
  until_true 10 sh -c "docker exec --user 12345:12345 $c svctl status 2>/dev/null | grep -q running" \
    || fail "svctl as 12345: $(docker exec --user 12345:12345 "$c" svctl status 2>&1); logs: $(docker logs "$c" 2>&1)"
  docker logs "$c" 2>&1 | grep -q 'db | db as 12345' || fail "service as 12345: $(docker logs "$c" 2>&1)"
  c=$(run_d ro --read-only --tmpfs /run -v "$dir:/etc/corral/services.d:ro" "$img") || fail "docker run --read-only"
  until_true 10 sh -c "docker exec $c svctl status 2>/dev/null | grep -q running" \
    || fail "svctl on a read-only root: $(docker logs "$c" 2>&1)"
}

ctrl_c_reaches_the_foreground_command() {
  command -v script >/dev/null || fail "needs script (bsdutils) for a terminal"
  # `docker run -it` under a pseudo-terminal; Ctrl-C typed into it must
  # reach the main command, which corral made the terminal's foreground.
  local rc
  (sleep 5; for _ in 1 2 3 4 5; do printf '\003'; sleep 1; done) \
    | timeout 30 script -qec "docker run -it --rm --label $label $img -- sh -c 'trap \"echo got INT; exit 7\" INT; echo ready; while :; do sleep 0.1; done'" /dev/null \
    > "$work/tty.out" 2>&1
  rc=$?
  [ "$rc" = 7 ] || fail "exit $rc, expected 7 from the INT trap: $(cat -v "$work/tty.out")"
  grep -q "got INT" "$work/tty.out" || fail "no INT: $(cat -v "$work/tty.out")"
}

real_daemons_nginx_and_cron() {
  local image; image=$(daemon_image) || fail "building the Debian image with nginx and cron failed"
  local c; c=$(run_d daemons "$image") || fail "docker run"
  until_true 15 sh -c "[ \$(docker exec $c svctl status --json 2>/dev/null | grep -o '\"state\":\"running\"' | wc -l) = 2 ]" \
    || fail "nginx and cron running: $(docker exec "$c" svctl status 2>&1); $(docker logs "$c" 2>&1 | tail -5)"
  local page; page=$(docker exec "$c" busybox wget -qO- http://127.0.0.1/ 2>&1)
  echo "$page" | grep -q "Welcome to nginx" || fail "the served page: $page"
  echo "    waiting for cron's next minute"
  until_true 75 docker exec "$c" test -e /tmp/cron-ran || fail "the cron job did not run: $(docker logs "$c" 2>&1 | tail -5)"
  local t0 t1; t0=$(date +%s%N); docker stop "$c" >/dev/null; t1=$(date +%s%N)
  echo "    docker stop took $(( (t1 - t0) / 1000000 )) ms"
  [ "$(docker inspect -f '{{.State.ExitCode}}' "$c")" = 0 ] || fail "exit code $(docker inspect -f '{{.State.ExitCode}}' "$c"): $(docker logs "$c" 2>&1 | tail -5)"
}

dockerfile_example_builds_and_runs() {
  # The same script a user runs (tests/docker/example-image.sh).
  example_image corral-e2e:example || fail "building Dockerfile.example failed (above)"
  local c; c=$(run_d example --health-cmd "svctl health" --health-interval 1s --health-retries 2 corral-e2e:example) \
    || fail "docker run"
  until_true 15 sh -c "[ \$(docker exec $c svctl status --json 2>/dev/null | grep -o '\"state\":\"running\"' | wc -l) = 2 ]" \
    || fail "nginx and cron running: $(docker exec "$c" svctl status 2>&1); $(docker logs "$c" 2>&1 | tail -5)"
  local page; page=$(docker exec "$c" busybox wget -qO- http://127.0.0.1/ 2>&1)
  echo "$page" | grep -q "Welcome to nginx" || fail "the served page: $page"
  until_true 20 sh -c "[ \$(docker inspect -f '{{.State.Health.Status}}' $c) = healthy ]" \
    || fail "HEALTHCHECK: $(docker inspect -f '{{json .State.Health}}' "$c")"
  local t1 t2; t1=$(date +%s%N); docker stop "$c" >/dev/null; t2=$(date +%s%N)
  echo "    docker stop took $(( (t2 - t1) / 1000000 )) ms"
  [ "$(docker inspect -f '{{.State.ExitCode}}' "$c")" = 0 ] \
    || fail "exit code $(docker inspect -f '{{.State.ExitCode}}' "$c"): $(docker logs "$c" 2>&1 | tail -5)"
}

apt_cacher_ng_with_schedules_instead_of_cron() {
  local image; image=$(acng_image) || fail "building examples/apt-cacher-ng failed"
  local c; c=$(run_d acng "$image") || fail "docker run"
  until_true 20 sh -c "docker exec $c svctl status --json 2>/dev/null | grep -q '\"name\":\"apt-cacher-ng\",\"state\":\"running\"'" \
    || fail "apt-cacher-ng running: $(docker exec "$c" svctl status 2>&1); $(docker logs "$c" 2>&1 | tail -5)"
  docker exec "$c" svctl wait --timeout 20s apt-cacher-ng >/dev/null 2>&1 \
    || fail "apt-cacher-ng ready (its report page): $(docker exec "$c" svctl status 2>&1)"
  # No cron daemon runs (Debian's logrotate package drags cron in, but
  # nothing starts it): the jobs are schedules, shown with their next runs.
  docker exec "$c" busybox ps -o comm | grep -qx cron && fail "a cron daemon runs: $(docker exec "$c" busybox ps)"
  local status; status=$(docker exec "$c" svctl status 2>&1)
  echo "$status" | grep -q '^acng-maintenance  *cron "25 6 \* \* \*"' || fail "SCHEDULED table: $status"
  echo "$status" | grep -q '^logrotate  *cron "@daily"' || fail "SCHEDULED table: $status"
  # Run both now, as their schedules would, and see them succeed.
  local out
  out=$(docker exec "$c" svctl run acng-maintenance 2>&1) || fail "svctl run acng-maintenance: $out; $(docker logs "$c" 2>&1 | tail -8)"
  out=$(docker exec "$c" svctl run logrotate 2>&1) || fail "svctl run logrotate: $out; $(docker logs "$c" 2>&1 | tail -8)"
  docker logs "$c" 2>&1 | grep -q '^corral: acng-maintenance: done in' || fail "no run in docker logs: $(docker logs "$c" 2>&1 | tail -8)"
  local json; json=$(docker exec "$c" svctl status --json acng-maintenance logrotate)
  [ "$(echo "$json" | grep -o '"runs":1' | wc -l)" = 2 ] || fail "runs not counted: $json"
  [ "$(echo "$json" | grep -o '"last_exit":{"code":0}' | wc -l)" -ge 2 ] || fail "a job failed: $json"
  docker exec "$c" svctl health >/dev/null || fail "health: $(docker exec "$c" svctl health 2>&1)"
  local t1 t2; t1=$(date +%s%N); docker stop "$c" >/dev/null; t2=$(date +%s%N)
  echo "    docker stop took $(( (t2 - t1) / 1000000 )) ms"
  [ "$(docker inspect -f '{{.State.ExitCode}}' "$c")" = 0 ] || fail "exit code $(docker inspect -f '{{.State.ExitCode}}' "$c")"
}

unbound_actions_validate_update_reload() {
  local image; image=$(unbound_image) || fail "building examples/unbound failed"
  local c; c=$(run_d unbound "$image") || fail "docker run"
  docker exec "$c" svctl wait --timeout 20s unbound >/dev/null 2>&1 \
    || fail "unbound ready: $(docker exec "$c" svctl status 2>&1); $(docker logs "$c" 2>&1 | tail -5)"
  local out
  out=$(docker exec "$c" svctl actions 2>&1)
  for a in validate update reload; do echo "$out" | grep -q "^unbound  *$a " || fail "actions lists no $a: $out"; done
  out=$(docker exec "$c" svctl action unbound validate 2>&1) || fail "validate: $out"
  echo "$out" | grep -q "no errors in /etc/unbound/unbound.conf" || fail "validate said: $out"
  # A sinkhole entry: an answer no resolver on the network would give.
  docker exec "$c" sh -c 'printf "local-zone: \"blocked.example.\" redirect\nlocal-data: \"blocked.example. A 10.9.8.7\"\n" > /tmp/good.conf; echo "not a list" > /tmp/bad.conf'
  # A bad list is refused by unbound-checkconf and leaves the installed one.
  out=$(docker exec "$c" svctl action unbound update file:///tmp/bad.conf 2>&1) && fail "a bad list was installed: $out"
  echo "$out" | grep -q "the installed one is unchanged" || fail "bad list: $out"
  [ -z "$(docker exec "$c" cat /var/lib/unbound/blocklist.conf)" ] || fail "the installed list changed"
  out=$(docker exec "$c" svctl action unbound update file:///tmp/good.conf 2>&1) || fail "update: $out"
  echo "$out" | grep -q "installed 1 blocked zones" || fail "update said: $out"
  # Not applied until the daemon is told: then the sinkhole answers.
  docker exec "$c" busybox nslookup blocked.example 127.0.0.1 2>&1 | grep -q 10.9.8.7 && fail "blocked before the reload"
  out=$(docker exec "$c" svctl action unbound reload 2>&1) || fail "reload: $out"
  until_true 10 sh -c "docker exec $c busybox nslookup blocked.example 127.0.0.1 2>&1 | grep -q 10.9.8.7" \
    || fail "not blocked after the reload: $(docker exec "$c" busybox nslookup blocked.example 127.0.0.1 2>&1)"
  local logs; logs=$(docker logs "$c" 2>&1)
  echo "$logs" | grep -q '^unbound/update | installed 1 blocked zones' || fail "no marked line in docker logs: $(echo "$logs" | tail -8)"
  echo "$logs" | grep -q 'unbound/reload: sent SIGHUP' || fail "reload not logged: $(echo "$logs" | tail -8)"
  [ "$(docker exec "$c" svctl status --json unbound | grep -o '"restarts":0')" ] || fail "unbound restarted"
  local t1 t2; t1=$(date +%s%N); docker stop "$c" >/dev/null; t2=$(date +%s%N)
  echo "    docker stop took $(( (t2 - t1) / 1000000 )) ms"
  [ "$(docker inspect -f '{{.State.ExitCode}}' "$c")" = 0 ] || fail "exit code $(docker inspect -f '{{.State.ExitCode}}' "$c")"
}

# --- runner ----------------------------------------------------------------
all=(three_services stubborn_service_is_killed_in_time main_command_exit_codes exec_orphans_are_reaped
     healthcheck_follows_svctl_health random_uid_and_read_only_root ctrl_c_reaches_the_foreground_command
     real_daemons_nginx_and_cron dockerfile_example_builds_and_runs apt_cacher_ng_with_schedules_instead_of_cron
     unbound_actions_validate_update_reload)
selected=("${@:-${all[@]}}")
[ $# -gt 0 ] || selected=("${all[@]}")
t0=$(date +%s)
if ! build_image; then
  echo "docker e2e: building the image failed"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "docker e2e: image $img built in $(( $(date +%s) - t0 )) s"
passed=0; failed=0
for t in "${selected[@]}"; do
  s=$(date +%s%N)
  if out=$("$t" 2>&1); then
    passed=$((passed + 1)); verdict=ok
  else
    failed=$((failed + 1)); verdict=FAILED
  fi
  printf 'test docker::%s ... %s (%d ms)\n' "$t" "$verdict" $(( ($(date +%s%N) - s) / 1000000 ))
  [ -n "$out" ] && printf '%s\n' "$out"
done
echo
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
