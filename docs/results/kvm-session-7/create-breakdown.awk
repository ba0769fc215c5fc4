# Reads a function_graph trace of KVM_CREATE_VM (trace-create.sh,
# profile-build.sh) and prints, per step of `step` creates (in order), the
# mean time in us of the whole ioctl and of the traced functions inside it.
# A create is a kvm_dev_ioctl block holding an __mmu_notifier_register.
function dur(line) { return match(line, /[0-9]+\.[0-9]+ us/) ? substr(line, RSTART, RLENGTH - 3) + 0 : -1 }
/kvm_dev_ioctl.*\{ *$/ { inside = 1; delete cur; next }
inside && /mm_take_all_locks\(\);/ { cur["take_all_locks"] += dur($0) }
inside && /mm_drop_all_locks\(\);/ { cur["drop_all_locks"] += dur($0) }
inside && /kvm_arch_init_vm/ { cur["arch_init_vm"] += dur($0) }
inside && /anon_inode_getfile/ { cur["anon_inode_getfile"] += dur($0) }
inside && /^[^|]*\|[^|]*\|[^}]*\}/ {
	# a closing brace: of __mmu_notifier_register (indented) or of kvm_dev_ioctl
	d = dur($0)
	if ($0 ~ /\|    +\}/) { cur["mmu_notifier_register"] += d; next }
	if (("take_all_locks" in cur)) {
		s = int(n / step); n++
		tot[s] += d; cnt[s]++
		for (k in cur) part[s, k] += cur[k]
		if (s > maxs) maxs = s
	}
	inside = 0
}
END {
	split("take_all_locks drop_all_locks mmu_notifier_register arch_init_vm anon_inode_getfile", ks, " ")
	printf "%8s %14s", "creates", "KVM_CREATE_VM"; for (i = 1; i <= 5; i++) printf " %22s", ks[i]; printf "\n"
	for (s = 0; s <= maxs; s++) {
		printf "%8d %14.0f", (s + 1) * step, tot[s] / cnt[s]
		for (i = 1; i <= 5; i++) printf " %22.0f", part[s, ks[i]] / cnt[s]
		printf "\n"
	}
}
