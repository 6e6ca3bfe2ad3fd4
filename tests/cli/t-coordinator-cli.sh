#!/usr/bin/env bash
# The coordinator's command line as CONTRACT sections 1 and 3 fix it:
# --help and --version exit 0; an unknown option, a bad value, a missing
# required value or a bad secret file exit 2 with one line on stderr that
# names the problem; MESH_<NAME> stands in for --name and the command line
# wins. Loopback only.
set -uo pipefail
BIN=${BIN:-bin}
C=$BIN/coordinator
work=$(mktemp -d /tmp/mesh-cli.XXXXXX)
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
[[ -x $C ]] || { echo "t-coordinator-cli: build first (make)" >&2; exit 1; }

pass=0 fail=0
check() { # name, condition result (0 = ok), detail
	if [[ $2 == 0 ]]; then echo "ok - $1"; pass=$((pass + 1))
	else echo "not ok - $1: $3"; fail=$((fail + 1)); fi
}

# Runs the coordinator expecting it to exit with $1 and print exactly one
# stderr line matching $2.
expect_exit() {
	local name=$1 want=$2 pattern=$3
	shift 3
	local out rc lines
	out=$(timeout 10 "$@" 2>&1 >/dev/null)
	rc=$?
	lines=$(printf '%s' "$out" | grep -c '' || true)
	if [[ $rc == "$want" && $lines == 1 ]] && grep -qE -- "$pattern" <<<"$out"; then
		check "$name" 0
	else
		check "$name" 1 "exit $rc, $lines stderr lines: $out"
	fi
}

(umask 077; openssl rand -hex 32 >"$work/good")
(umask 077; openssl rand -hex 31 >"$work/short")
(umask 077; : >"$work/empty")
openssl rand -hex 32 >"$work/open" && chmod 644 "$work/open"
(umask 077; openssl rand -base64 48 >"$work/b64")

out=$(timeout 10 "$C" --help); rc=$?
[[ $rc == 0 ]] && grep -q -- "--secret-file" <<<"$out" && grep -q "default: 7000" <<<"$out"
check "--help exits 0 listing options with defaults" $? "exit $rc"
out=$(timeout 10 "$C" --version); rc=$?
[[ $rc == 0 && $out =~ ^coordinator\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
check "--version prints the version" $? "exit $rc: $out"

expect_exit "unknown option" 2 "unknown option --bogus" "$C" --secret-file "$work/good" --bogus
expect_exit "bad port value" 2 "--http-port.*1..65535" "$C" --secret-file "$work/good" --http-port 70000
expect_exit "missing value" 2 "--realm needs a value" "$C" --secret-file "$work/good" --realm
expect_exit "missing --secret-file" 2 "--secret-file is required" "$C"
expect_exit "bad env value names the variable" 2 "MESH_STUN_PORT" env MESH_STUN_PORT=x "$C" --secret-file "$work/good"
expect_exit "bad relay range" 2 "--relay-ports" "$C" --secret-file "$work/good" --relay-ports 9000-100
expect_exit "bad log level" 2 "--log-level" "$C" --secret-file "$work/good" --log-level loud
expect_exit "bad http threads" 2 "--http-threads.*1..16 or auto" "$C" --secret-file "$work/good" --http-threads 0
expect_exit "--ha without --sentinel" 2 "--ha needs --sentinel" "$C" --secret-file "$work/good" --ha
expect_exit "secret file missing" 2 "secret file .*No such file" "$C" --secret-file "$work/nothere"
expect_exit "secret file empty" 2 "secret file .*empty" "$C" --secret-file "$work/empty"
expect_exit "secret file too short" 2 "secret file .*31 bytes, at least 32" "$C" --secret-file "$work/short"
expect_exit "secret file readable by others" 2 "secret file .*mode 644" "$C" --secret-file "$work/open"

# A good base64 secret, options from the environment, the command line
# winning over the environment.
MESH_HTTP_PORT=17991 MESH_LOG_FORMAT=json "$C" --secret-file "$work/b64" --listen 127.0.0.1 \
	--http-port 17990 --stun-port 17992 --tls-port 0 --relay-ports 17993-17995 >"$work/log" 2>&1 &
pid=$!
up=1
for _ in $(seq 50); do
	curl -sf -o /dev/null http://127.0.0.1:17990/v1/health && { up=0; break; }
	sleep 0.1
done
check "base64 secret accepted, --http-port wins over MESH_HTTP_PORT" $up "$(tail -2 "$work/log")"
head -1 "$work/log" | grep -q '^{"ts":"' 
check "MESH_LOG_FORMAT=json applies" $? "$(head -1 "$work/log")"
kill "$pid"; wait "$pid"; rc=$?
pid=
check "SIGTERM exits 0" $rc "exit $rc"

echo "cli: $pass passed, $fail failed"
((fail == 0))
