F=/work/cache/kvmmeas9/f
echo "== KVM test"
(cd /work/wt/kvmmeas9/internal/monitor/kvm && UNIPOOL_REQUIRE_KVM=1 UNIPOOL_KVM_SAMPLE=$F/work /work/cache/kvmmeas9/kvm.test -test.run 'HeldGuests|ThisHostRuns' -test.v -test.timeout 5m) 2>&1 | grep -v "^=== "
cd $F
for way in process in-process; do
  extra=""; [ $way = in-process ] && extra=--monitor-in-process
  echo "== held, 100, $way"
  /usr/bin/time -f "%e s %M KiB maxrss" unipool bench memory --monitor kvm --reuse --count 100 --work $F/work100 --out $F/o100-$way --modes shared,packed-naive $extra 2>&1 | grep -v '^\(starting\|sampling\|compiling\|linking\|pooling\)' | tail -22
done
for way in process in-process; do
  extra=""; [ $way = in-process ] && extra=--monitor-in-process
  echo "== churn, $way"
  /usr/bin/time -f "%e s %M KiB maxrss" unipool bench memory --monitor kvm --reuse --count 100 --work $F/work100 --out $F/churn-$way --modes shared --arrivals 2 --lifetime 10s --duration 30s $extra 2>&1 | grep "^mode\|s .* maxrss"
done
echo "== hostmem"
/usr/bin/python3 /work/shared/tools/hostmem --settle 240 -- unipool bench monitor-process --spec $F/o100-process/monitor-shared.json --hold 330s
