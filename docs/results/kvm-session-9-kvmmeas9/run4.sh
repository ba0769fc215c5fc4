F=/work/cache/kvmmeas9/f
cd $F
roll() { sleep 230; p=$(pgrep -f 'bench monitor-process' | head -1); echo "smaps_rollup of $p ($(readlink /proc/$p/exe)):"; grep -E '^(Rss|Pss|Pss_Anon|Pss_File|Pss_Shmem):' /proc/$p/smaps_rollup; df -T "$(dirname "$(readlink /proc/$p/exe)")" | tail -1; }
echo "== hostmem, the PATH binary ($(command -v unipool))"
roll &
/usr/bin/python3 /work/shared/tools/hostmem --settle 240 -- unipool bench monitor-process --spec $F/o100b-process/monitor-shared.json --hold 300s
wait
cp "$(command -v unipool)" $F/unipool-copy
echo "== hostmem, a copy on the pool mount, as bench memory runs it"
roll &
/usr/bin/python3 /work/shared/tools/hostmem --settle 240 -- $F/unipool-copy bench monitor-process --spec $F/o100b-process/monitor-shared.json --hold 300s
wait
rm -f $F/unipool-copy
