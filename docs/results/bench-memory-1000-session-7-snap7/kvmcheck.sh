#!/bin/bash
set -x
cd /work/wt/snap7/internal/monitor/kvm && UNIPOOL_REQUIRE_KVM=1 /work/cache/snap7/kvm.test -test.v -test.run 'TestFreePageReport|TestLongModeGuestPrints|TestThisHostRunsKVMGuests|Snapshot' -test.timeout 15m
P=/work/cache/snap7/f200v3/pool
N="sort-0000 sort-0058 lz4pack-0001 lz4pack-0069 sha256-0002 gzip-0008 gzip-0186 json-0010 image-0009 image-0137 base64-0007 bignum-0015 crc32-0004 digest-0035 hello-0017 lz-0040 matmul-0082 primes-0142 regex-0060 stats-0099 template-0039 utf8-0083 wordcount-0192 yaml-0051 zstdpack-0013"
cd /tmp
unipool run --monitor kvm --pool $P $N > $TMPDIR/cold.out; echo "cold exit $?"
unipool run --monitor kvm --snapshot --pool $P $N > $TMPDIR/snap.out; echo "snapshot exit $?"
sort $TMPDIR/cold.out > $TMPDIR/cold.sorted; sort $TMPDIR/snap.out > $TMPDIR/snap.sorted
cat $TMPDIR/cold.sorted
if cmp $TMPDIR/cold.sorted $TMPDIR/snap.sorted; then echo "KVM: cold and snapshot outputs identical ($(wc -l < $TMPDIR/cold.sorted) lines)"; else echo "KVM: OUTPUTS DIFFER"; diff $TMPDIR/cold.sorted $TMPDIR/snap.sorted; fi
