#!/usr/bin/env bash
# The coordinator's HTTP limits (issue: hardening): a client sending one
# byte a second is dropped, idle kept-alive connections are closed,
# accepting pauses at --max-connections and resumes below it, oversized
# headers are refused, refusals are counted in /metrics and logged once
# per interval rather than once per request. Loopback only.
set -euo pipefail
BIN=${BIN:-bin}
PORT_BASE=${PORT_BASE:-17500}
HTTP=$PORT_BASE
work=$(mktemp -d /tmp/mesh-hardening.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

pass=0 fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
notok() { echo "not ok - $1: $2"; fail=$((fail + 1)); }

for t in curl openssl timeout; do
	command -v $t >/dev/null || { echo "t-hardening: missing tool $t (make deps)" >&2; exit 1; }
done
[[ -x $BIN/coordinator && -x $BIN/meshreq ]] || { echo "t-hardening: build first (make)" >&2; exit 1; }

(umask 077; openssl rand -hex 32 >"$work/secret")
"$BIN/coordinator" --secret-file "$work/secret" --listen 127.0.0.1 --http-port "$HTTP" \
	--stun-port $((PORT_BASE + 1)) --tls-port 0 --relay-ports $((PORT_BASE + 10))-$((PORT_BASE + 20)) \
	--request-timeout 3 --idle-timeout 4 --max-connections 20 --max-queued-mb 1 \
	--publish-rate 0 >"$work/log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
	curl -s -o /dev/null "http://127.0.0.1:$HTTP/v1/health" && break
	sleep 0.1
done

# Seconds until the server closes a connection fed by "feeder" (whose
# output goes to the server), or 99 when it stayed open for 20 s.
time_to_close() {
	local start=$SECONDS
	exec {fd}<>"/dev/tcp/127.0.0.1/$HTTP"
	"$@" >&$fd &
	local feeder=$!
	# A read returns at EOF (closed) or times out.
	if timeout 20 cat <&$fd >/dev/null; then :; fi
	kill $feeder 2>/dev/null || true
	wait $feeder 2>/dev/null || true
	exec {fd}>&-
	local took=$((SECONDS - start))
	((took >= 20)) && took=99
	echo $took
}

one_byte_a_second() {
	local req="GET /v1/health HTTP/1.1"$'\r\n'"Host: x"$'\r\n'
	for ((i = 0; i < ${#req}; i++)); do
		printf '%s' "${req:i:1}"
		sleep 1
	done
}
took=$(time_to_close one_byte_a_second)
if ((took >= 2 && took <= 6)); then ok "slow client dropped after ${took}s (request timeout 3s)"
else notok "slow client dropped" "closed after ${took}s, want 3..6"; fi

idle_feeder() { sleep 30; }
took=$(time_to_close idle_feeder)
if ((took >= 3 && took <= 7)); then ok "idle connection closed after ${took}s (idle timeout 4s)"
else notok "idle connection closed" "closed after ${took}s, want 4..7"; fi

# Connection bound: hold 20 idle connections, the 21st is not served
# until one of them goes.
fds=()
for _ in $(seq 20); do
	exec {f}<>"/dev/tcp/127.0.0.1/$HTTP"
	fds+=($f)
done
sleep 0.5
if curl -s -m 2 -o /dev/null "http://127.0.0.1:$HTTP/v1/health"; then
	notok "accepting pauses at --max-connections" "the 21st connection was served"
else
	ok "accepting pauses at --max-connections"
fi
for f in "${fds[@]}"; do exec {f}>&-; done
served=0
for _ in $(seq 30); do
	if curl -s -m 1 -o /dev/null "http://127.0.0.1:$HTTP/v1/health"; then served=1; break; fi
	sleep 0.2
done
if ((served)); then ok "accepting resumes below --max-connections"
else notok "accepting resumes below --max-connections" "still not served"; fi

big=$(head -c 9000 /dev/zero | tr '\0' a)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" "http://127.0.0.1:$HTTP/v1/health" || true)
if [[ $code != 200 ]]; then ok "oversized headers refused ($code)"
else notok "oversized headers refused" "answered 200"; fi

for _ in $(seq 40); do
	curl -s -o /dev/null "http://127.0.0.1:$HTTP/v1/poll?wait=0"
done
logged=$(grep -c "refused (bad_auth)" "$work/log" || true)
metric=$(curl -s "http://127.0.0.1:$HTTP/metrics" | awk -F' ' '/^mesh_refusals_total\{reason="bad_auth"\}/ {print $2}')
if ((metric >= 40)); then ok "bad_auth refusals counted ($metric)"
else notok "bad_auth refusals counted" "metric says ${metric:-nothing}"; fi
if ((logged >= 1 && logged <= 2)); then ok "bad_auth refusals logged once per interval ($logged lines for 40)"
else notok "bad_auth refusals logged once per interval" "$logged log lines for 40 refusals"; fi
slow=$(curl -s "http://127.0.0.1:$HTTP/metrics" | awk '/^mesh_refusals_total\{reason="slow_request"\}/ {print $2}')
if ((slow >= 1)); then ok "slow_request refusal counted"
else notok "slow_request refusal counted" "metric ${slow:-missing}"; fi
limit=$(curl -s "http://127.0.0.1:$HTTP/metrics" | awk '/^mesh_refusals_total\{reason="connection_limit"\}/ {print $2}')
if ((limit >= 1)); then ok "connection_limit refusal counted"
else notok "connection_limit refusal counted" "metric ${limit:-missing}"; fi

# The memory bound: 1 MiB of queued payload, 16 KiB per message: the
# 66th or so publish must be refused with 503 unavailable, and nothing
# queued before it lost.
payload=$(head -c 16000 /dev/zero | tr '\0' p)
psig=$(printf '%064d' 0)
codes=()
for i in $(seq 70); do
	body="{\"from\":\"big\",\"to\":\"sink$((i % 7))\",\"epoch\":1,\"kind\":\"fill\",\"payload\":\"$payload\",\"psig\":\"$psig\"}"
	code=$("$BIN/meshreq" --secret-file "$work/secret" --peer big --header 'Content-Type: application/json' \
		POST "http://127.0.0.1:$HTTP/v1/publish" "$body" 2>&1 >/dev/null | sed -n 's/^HTTP //p' || true)
	codes+=("$code")
done
accepted=$(printf '%s\n' "${codes[@]}" | grep -c '^202$' || true)
refused=$(printf '%s\n' "${codes[@]}" | grep -c '^503$' || true)
if ((accepted >= 60 && accepted <= 66 && refused == 70 - accepted)); then
	ok "memory bound: $accepted queued, then 503 unavailable"
else
	notok "memory bound" "codes: ${codes[*]}"
fi
queued=0
for s in $(seq 0 6); do
	n=$("$BIN/meshreq" --secret-file "$work/secret" --peer "sink$s" GET "http://127.0.0.1:$HTTP/v1/poll?wait=0" 2>/dev/null |
		grep -o '"kind":"fill"' | wc -l || true)
	queued=$((queued + n))
done
if ((queued == accepted)); then ok "nothing accepted was lost ($queued queued)"
else notok "nothing accepted was lost" "$queued queued, $accepted accepted"; fi

if kill -0 "${pids[0]}" 2>/dev/null; then ok "coordinator still serving"
else notok "coordinator still serving" "it exited: $(tail -3 "$work/log")"; fi

echo "hardening: $pass passed, $fail failed"
((fail == 0))
