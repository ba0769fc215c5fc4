F=/work/cache/kvmmeas9/f
cd $F
for way in process in-process; do
  extra=""; [ $way = in-process ] && extra=--monitor-in-process
  echo "== held again, 100, shared, $way"
  /usr/bin/time -f "%e s %M KiB maxrss" unipool bench memory --monitor kvm --reuse --count 100 --work $F/work100 --out $F/o100b-$way --modes shared $extra 2>&1 | grep "^mode\|s .* maxrss"
done
for way in process in-process; do
  extra=""; [ $way = in-process ] && extra=--monitor-in-process
  echo "== churn, $way"
  /usr/bin/time -f "%e s %M KiB maxrss" unipool bench memory --monitor kvm --reuse --count 100 --work $F/work100 --out $F/churn3-$way --modes shared --arrivals 2 --lifetime 10s --duration 30s $extra 2>&1 | grep "^mode\|s .* maxrss"
done
echo "== hostmem, settle 420"
/usr/bin/python3 /work/shared/tools/hostmem --settle 420 -- unipool bench monitor-process --spec $F/o100b-process/monitor-shared.json --hold 480s
