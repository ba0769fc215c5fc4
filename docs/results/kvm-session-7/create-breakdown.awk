# Reads a function_graph trace of KVM_CREATE_VM (trace-create.sh,
# profile-build.sh) and prints, per step of `step` creates (in order), the
# mean time in us of the whole ioctl and of the traced functions inside it.
# A create is a kvm_dev_ioctl block holding an mm_take_all_locks.
function dur(line) { return match(line, /[0-9]+\.[0-9]+ us/) ? substr(line, RSTART, RLENGTH - 3) + 0 : -1 }
{
	fn = $0; sub(/^.*\|/, "", fn)       # the function column
	if (fn ~ /^  kvm_dev_ioctl.*\{ *$/) { inside = 1; delete cur; next }
	if (!inside) next
	if (fn ~ /mm_take_all_locks\(\);/) cur["take_all_locks"] += dur($0)
	else if (fn ~ /mm_drop_all_locks\(\);/) cur["drop_all_locks"] += dur($0)
	else if (fn ~ /kvm_arch_init_vm/) cur["arch_init_vm"] += dur($0)
	else if (fn ~ /^    +\}/) cur["mmu_notifier_register"] += dur($0)
	else if (fn ~ /^  \}/) {
		if ("take_all_locks" in cur) {
			s = int(n / step); n++
			tot[s] += dur($0); cnt[s]++
			for (k in cur) part[s, k] += cur[k]
			if (s > maxs) maxs = s
		}
		inside = 0
	}
}
END {
	split("take_all_locks drop_all_locks arch_init_vm", ks, " ")
	printf "%8s %14s", "creates", "KVM_CREATE_VM"; for (i = 1; i <= 3; i++) printf " %16s", ks[i]; printf "\n"
	for (s = 0; s <= maxs && cnt[s]; s++) {
		printf "%8d %14.0f", (s + 1) * step, tot[s] / cnt[s]
		for (i = 1; i <= 3; i++) printf " %16.0f", part[s, ks[i]] / cnt[s]
		printf "\n"
	}
}
