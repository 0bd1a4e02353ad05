#!/usr/bin/env bash
# usage: measure_start.sh STATE_DIR [extra env...]  -> prints seconds until all three /readyz are 200, then stops the stack
state=$1; shift
export CLINIC_STATE_DIR=$state CLINIC_PG_PORT=56543 CLINIC_KAFKA_PORT=29292 CLINIC_INTAKE_PORT=28001 CLINIC_TRIAGE_PORT=28002 CLINIC_REFERRAL_PORT=28003 "$@"
start=$(date +%s.%N)
.venv/bin/python -m infra.stack > /tmp/measure-console.log 2>&1 &
pid=$!
for i in $(seq 1 1200); do
  ok=0
  for p in 28001 28002 28003; do curl -sf -o /dev/null http://127.0.0.1:$p/readyz && ok=$((ok+1)); done
  if [ $ok = 3 ] && grep -q "stack is running" /tmp/measure-console.log; then break; fi
  sleep 0.25
done
ready=$(date +%s.%N)
echo "ready after $(echo "$ready - $start" | bc) s"
grep -q "Demo credentials" /tmp/measure-console.log && echo "demo credentials printed"
sleep 2
t0=$(date +%s.%N); kill -INT $pid; wait $pid; echo "exit $? stopped in $(echo "$(date +%s.%N) - $t0" | bc) s"
ss -ltnp | grep -E ':(56543|29292|29293|2800[123]) ' || echo "no ports left"
