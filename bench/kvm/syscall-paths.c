// What each way of turning a guest's `syscall` into a KVM exit costs on this host, beside the floors.
// A 64-bit guest with the platform's layout in miniature (user code low, supervisor code in PML4 slot
// 255, IDT gates on IST1 pointing at one `hlt` per vector) runs one of these loops; every KVM_RUN
// returns once per iteration:
//   hlt     ring 0: `hlt; jmp` (the bare exit, as exit-floor.c)
//   out     ring 3: `out 0x80, al; jmp` (the cheapest exit user mode can cause; the TSS bitmap opens the port)
//   fault   ring 3: `syscall` with MSR_LSTAR at a supervisor-only `hlt`. A hypervisor that emulates
//           `syscall` in user mode faults fetching it (#PF delivered in ring 0, stops at the vector's
//           hlt); the VMM answers with an iret frame and RIP at `iretq` (the platform's first path)
//   user    ring 3: `syscall` with MSR_LSTAR at a user page holding `out 0x80, al`; the VMM resumes at
//           RCX with RIP/RSP/RFLAGS in sync regs, no ring-0 code (the platform's fast path)
//   syscall-paths MODE [rounds]   prints the median nanoseconds of one round trip
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#define MEMORY 0x100000
#define SUPER 0x7f8000000000ULL /* PML4 slot 255 */
#define PORT 0x80
enum { P = 1, W = 2, U = 4 };
#define NX (1ULL << 63)

// Guest-physical layout: tables at 0x1000-0x7000, user code 0x10000, user stack 0x20000,
// trampoline 0x30000, IDT 0x32000, GDT+TSS 0x33000, ring-0 stack 0x35000, syscall page 0x37000.
static uint8_t *mem;
static uint64_t *at(uint64_t gpa) { return (uint64_t *)(mem + gpa); }
static void map(uint64_t table, uint64_t va, uint64_t gpa, uint64_t flags) { at(table)[(va >> 12) & 511] = gpa | flags; }
static int compare(const void *a, const void *b) { long x = *(const long *)a, y = *(const long *)b; return (x > y) - (x < y); }
static long now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000L + t.tv_nsec; }

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "user";
	int rounds = argc > 2 ? atoi(argv[2]) : 20000;
	int hlt = !strcmp(mode, "hlt"), out = !strcmp(mode, "out"), fault = !strcmp(mode, "fault"), user = !strcmp(mode, "user");
	if (!hlt && !out && !fault && !user) {
		fprintf(stderr, "usage: %s hlt|out|fault|user [rounds]\n", argv[0]);
		return 2;
	}
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("/dev/kvm");
		return 1;
	}
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	mem = mmap(NULL, MEMORY, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct kvm_userspace_memory_region region = { .slot = 0, .memory_size = MEMORY, .userspace_addr = (unsigned long)mem };
	if (vm < 0 || ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		perror("KVM setup");
		return 1;
	}

	// Page tables: PML4 0x1000; low half 0x2000/0x3000/0x4000; slot 255 0x5000/0x6000/0x7000.
	at(0x1000)[0] = 0x2000 | P | W | U, at(0x2000)[0] = 0x3000 | P | W | U, at(0x3000)[0] = 0x4000 | P | W | U;
	at(0x1000)[255] = 0x5000 | P | W | U, at(0x5000)[0] = 0x6000 | P | W | U, at(0x6000)[0] = 0x7000 | P | W | U;
	map(0x4000, 0x10000, 0x10000, P | U);
	map(0x4000, 0x20000, 0x20000, P | W | U | NX);
	map(0x7000, SUPER, 0x30000, P);
	map(0x7000, SUPER + 0x2000, 0x32000, P | W | NX);
	map(0x7000, SUPER + 0x3000, 0x33000, P | W | NX);
	map(0x7000, SUPER + 0x5000, 0x35000, P | W | NX);
	map(0x7000, SUPER + 0x7000, 0x37000, P | U);

	// Trampoline: iretq at 0, the LSTAR hlt at 0x80, the ring-0 loop at 0x90, one hlt per vector from 0x100.
	uint8_t *code = mem + 0x30000;
	code[0] = 0x48, code[1] = 0xcf;
	code[0x80] = 0xf4;
	code[0x90] = 0xf4, code[0x91] = 0xeb, code[0x92] = 0xfd;
	memset(code + 0x100, 0xf4, 4 * 256);
	uint8_t *page = mem + 0x37000;
	page[0] = 0xe6, page[1] = PORT, page[2] = 0x0f, page[3] = 0x0b; // out 0x80, al; ud2
	for (uint64_t v = 0; v < 256; v++) {
		uint64_t handler = SUPER + 0x100 + 4 * v;
		at(0x32000)[2 * v] = (handler & 0xffff) | (0x10ULL << 16) | (1ULL << 32) | (0x8eULL << 40) | (((handler >> 16) & 0xffff) << 48);
		at(0x32000)[2 * v + 1] = handler >> 32;
	}
	uint64_t *gdt = at(0x33000);
	gdt[2] = 0x00af9a000000ffffULL, gdt[3] = 0x00cf92000000ffffULL, gdt[4] = 0x00cffa000000ffffULL;
	gdt[5] = 0x00cff2000000ffffULL, gdt[6] = 0x00affa000000ffffULL;
	uint64_t tss = SUPER + 0x3100, tssLimit = 104 + 32;
	gdt[8] = tssLimit | ((tss & 0xffffff) << 16) | (0x89ULL << 40) | (((tss >> 24) & 0xff) << 56), gdt[9] = tss >> 32;
	uint8_t *t = mem + 0x33100;
	*(uint64_t *)(t + 4) = *(uint64_t *)(t + 36) = SUPER + 0x6000; // RSP0, IST1
	*(uint16_t *)(t + 102) = 104;
	memset(t + 104, 0xff, 33);
	t[104 + PORT / 8] &= ~(1 << (PORT % 8));

	// The loop in user code.
	uint8_t *u = mem + 0x10000;
	static const uint8_t outLoop[] = { 0xe6, PORT, 0xeb, 0xfc };                                // out 0x80, al; jmp
	static const uint8_t syscallLoop[] = { 0xb8, 110, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7 };          // mov eax, 110; syscall; jmp
	if (out)
		memcpy(u, outLoop, sizeof(outLoop));
	else
		memcpy(u, syscallLoop, sizeof(syscallLoop));

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	struct kvm_run *run = mmap(NULL, ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + 256 * sizeof(struct kvm_cpuid_entry2));
	cpuid->nent = 256;
	ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid);
	ioctl(vcpu, KVM_SET_CPUID2, cpuid);
	struct kvm_sregs sregs;
	ioctl(vcpu, KVM_GET_SREGS, &sregs);
	sregs.cs = (struct kvm_segment){ .limit = 0xffffffff, .selector = 0x10, .type = 0xb, .present = 1, .s = 1, .l = 1, .g = 1 };
	sregs.ss = (struct kvm_segment){ .limit = 0xffffffff, .selector = 0x18, .type = 0x3, .present = 1, .db = 1, .s = 1, .g = 1 };
	sregs.ds = sregs.es = sregs.fs = sregs.gs = (struct kvm_segment){ .unusable = 1 };
	sregs.tr = (struct kvm_segment){ .base = tss, .limit = tssLimit, .selector = 0x40, .type = 0xb, .present = 1 };
	sregs.ldt = (struct kvm_segment){ .unusable = 1, .type = 2 };
	sregs.gdt.base = SUPER + 0x3000, sregs.gdt.limit = 79, sregs.idt.base = SUPER + 0x2000, sregs.idt.limit = 0xfff;
	sregs.cr0 = 0x80050033, sregs.cr4 = 0x20 | 0x200 | 0x400, sregs.efer = 0x1 | 0x100 | 0x400 | 0x800, sregs.cr3 = 0x1000;
	struct { struct kvm_msrs h; struct kvm_msr_entry e[3]; } msrs = { .h.nmsrs = 3 };
	msrs.e[0] = (struct kvm_msr_entry){ .index = 0xc0000081, .data = (0x10ULL << 32) | (0x23ULL << 48) };
	msrs.e[1] = (struct kvm_msr_entry){ .index = 0xc0000082, .data = user ? SUPER + 0x7000 : SUPER + 0x80 };
	msrs.e[2] = (struct kvm_msr_entry){ .index = 0xc0000084, .data = user ? 0x47500 : 0x47700 };
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_MSRS, &msrs) != 3) {
		perror("vCPU setup");
		return 1;
	}

	// Enter: ring 0 at the loop, or iretq to user code with a frame on the ring-0 stack.
	uint64_t *frame = at(0x36000 - 40);
	frame[0] = 0x10000, frame[1] = 0x33, frame[2] = 0x202, frame[3] = 0x21000, frame[4] = 0x2b;
	struct kvm_regs regs = { .rip = hlt ? SUPER + 0x90 : SUPER, .rsp = SUPER + 0x6000 - 40, .rflags = 2 };
	ioctl(vcpu, KVM_SET_REGS, &regs);
	run->kvm_valid_regs = KVM_SYNC_X86_REGS;
	struct kvm_regs *g = &run->s.regs.regs;

	long *samples = calloc(rounds, sizeof(long));
	for (int i = -200; i < rounds; i++) {
		long start = now();
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			perror("KVM_RUN");
			return 1;
		}
		long end = now();
		if (i >= 0)
			samples[i] = end - start;
		unsigned expected = hlt || fault ? KVM_EXIT_HLT : KVM_EXIT_IO;
		if (run->exit_reason != expected) {
			fprintf(stderr, "%s: unexpected exit %u at rip 0x%llx\n", mode, run->exit_reason, g->rip);
			return 1;
		}
		if (fault) {
			// Stopped at a vector's hlt (the #PF of a user-mode syscall) or at the LSTAR hlt (ring-0 syscall).
			uint64_t rsp = g->rsp == SUPER + 0x6000 - 48 ? g->rsp + 8 : g->rsp;
			uint64_t *f = at(0x35000 + (rsp - (SUPER + 0x5000)));
			uint64_t userRsp = g->rip == SUPER + 0x81 ? g->rsp : f[3];
			frame[0] = g->rcx, frame[1] = 0x33, frame[2] = (g->r11 & 0x3c0fd5) | 0x202, frame[3] = userRsp, frame[4] = 0x2b;
			g->rax = 0, g->rip = SUPER, g->rsp = SUPER + 0x6000 - 40, g->rflags = 2;
			run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
		} else if (user) {
			g->rax = 0, g->rip = g->rcx, g->rflags = (g->r11 & 0x3c0fd5) | 0x202;
			run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
		}
	}
	qsort(samples, rounds, sizeof(long), compare);
	printf("%ld\n", samples[rounds / 2]);
	return 0;
}
