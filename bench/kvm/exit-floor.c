// The floor under any KVM platform: one KVM_RUN round trip to a guest that only halts.
// A 16-bit guest at 0x1000 runs "hlt; jmp $-3"; every KVM_RUN returns KVM_EXIT_HLT.
//   exit-floor [rounds]   prints the median nanoseconds of one round trip
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

static int compare(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 20000;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("/dev/kvm");
		return 1;
	}
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	unsigned char *memory = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static const unsigned char code[] = { 0xf4, 0xeb, 0xfd }; // hlt; jmp back to the hlt
	memcpy(memory + 0x1000, code, sizeof(code));
	struct kvm_userspace_memory_region region = { .slot = 0, .guest_phys_addr = 0, .memory_size = 0x10000, .userspace_addr = (unsigned long)memory };
	if (vm < 0 || ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		perror("KVM setup");
		return 1;
	}
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	struct kvm_sregs sregs;
	ioctl(vcpu, KVM_GET_SREGS, &sregs);
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	ioctl(vcpu, KVM_SET_SREGS, &sregs);
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
	ioctl(vcpu, KVM_SET_REGS, &regs);
	long *samples = calloc(rounds, sizeof(long));
	for (int i = -1000; i < rounds; i++) {
		struct timespec start, end;
		clock_gettime(CLOCK_MONOTONIC, &start);
		if (ioctl(vcpu, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_HLT) {
			fprintf(stderr, "unexpected exit %d\n", run->exit_reason);
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &end);
		if (i >= 0)
			samples[i] = (end.tv_sec - start.tv_sec) * 1000000000L + (end.tv_nsec - start.tv_nsec);
	}
	qsort(samples, rounds, sizeof(long), compare);
	printf("%ld\n", samples[rounds / 2]);
	return 0;
}
