/*
 * bench/exits C floor: the least a VMM can do per exit on this host. Loads a guest image
 * written by bench/exits/guest.ts (registers, segment registers, RAM), sets up the VM the way
 * tsvmm's KVM backend does (TSS/identity-map addresses, in-kernel irqchip and PIT, one memory
 * slot), and runs it with the tightest possible loop: KVM_RUN, look at the exit, answer it.
 *
 *   exits-floor <image> <pio|mmio|ioeventfd> <iterations>
 * prints: <exits> <seconds>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Must match bench/exits/guest.ts and base/memory-map.ts. */
#define DONE_PORT 0xe0
#define EXIT_PORT 0x510
#define DOORBELL_PORT 0x600
#define MMIO_ADDRESS 0xd0000000u
#define KVM_TSS_ADDRESS 0xfffbd000u
#define KVM_IDENTITY_MAP_ADDRESS 0xfffbc000ull

static void die(const char *what) {
  fprintf(stderr, "exits-floor: %s failed: %s\n", what, strerror(errno));
  exit(1);
}

static int xioctl(int fd, unsigned long request, void *arg, const char *what) {
  int r = ioctl(fd, request, arg);
  if (r < 0) die(what);
  return r;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: exits-floor <image> <pio|mmio|ioeventfd> <iterations>\n");
    return 2;
  }
  const char *workload = argv[2];
  long iterations = atol(argv[3]);

  FILE *f = fopen(argv[1], "rb");
  if (!f) die("open image");
  char magic[8];
  uint64_t ram_size;
  struct kvm_regs regs;
  struct kvm_sregs sregs;
  if (fread(magic, 8, 1, f) != 1 || memcmp(magic, "TSVMMIMG", 8) != 0 || fread(&ram_size, 8, 1, f) != 1 ||
      fread(&regs, sizeof regs, 1, f) != 1 || fread(&sregs, sizeof sregs, 1, f) != 1) {
    fprintf(stderr, "exits-floor: %s is not a bench/exits guest image\n", argv[1]);
    return 1;
  }

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  if (ioctl(vm, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDRESS) < 0) die("KVM_SET_TSS_ADDR");
  uint64_t identity = KVM_IDENTITY_MAP_ADDRESS;
  xioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &identity, "KVM_SET_IDENTITY_MAP_ADDR");
  if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");
  struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
  xioctl(vm, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");

  int memfd = memfd_create("exits-floor-ram", MFD_CLOEXEC);
  if (memfd < 0 || ftruncate(memfd, ram_size) < 0) die("memfd");
  uint8_t *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, memfd, 0);
  if (ram == MAP_FAILED) die("mmap RAM");
  if (fread(ram, ram_size, 1, f) != 1) {
    fprintf(stderr, "exits-floor: image truncated\n");
    return 1;
  }
  fclose(f);
  struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = ram_size, .userspace_addr = (uintptr_t)ram};
  xioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");

  int doorbell = -1;
  if (strcmp(workload, "ioeventfd") == 0) {
    doorbell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct kvm_ioeventfd io = {.addr = DOORBELL_PORT, .len = 1, .fd = doorbell, .flags = KVM_IOEVENTFD_FLAG_PIO};
    xioctl(vm, KVM_IOEVENTFD, &io, "KVM_IOEVENTFD");
  }

  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  int mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");
  xioctl(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
  xioctl(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");

  long exits = 0, port_writes = 0, mmio_reads = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR) continue;
      die("KVM_RUN");
    }
    exits++;
    if (run->exit_reason == KVM_EXIT_IO) {
      if (run->io.port == DONE_PORT) break;
      if (run->io.port == EXIT_PORT && run->io.direction == KVM_EXIT_IO_OUT) { port_writes++; continue; }
    } else if (run->exit_reason == KVM_EXIT_MMIO && !run->mmio.is_write && run->mmio.phys_addr == MMIO_ADDRESS) {
      uint32_t value = 1;
      memcpy(run->mmio.data, &value, run->mmio.len < 4 ? run->mmio.len : 4);
      mmio_reads++;
      continue;
    }
    fprintf(stderr, "exits-floor: unexpected exit %u\n", run->exit_reason);
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

  long expected = strcmp(workload, "pio") == 0 ? port_writes : strcmp(workload, "mmio") == 0 ? mmio_reads : 0;
  if (expected != iterations && strcmp(workload, "ioeventfd") != 0) {
    fprintf(stderr, "exits-floor: expected %ld accesses, saw %ld\n", iterations, expected);
    return 1;
  }
  if (doorbell >= 0) {
    uint64_t count = 0;
    if (read(doorbell, &count, 8) != 8 || (long)count != iterations) {
      fprintf(stderr, "exits-floor: the doorbell eventfd counted %llu, expected %ld\n", (unsigned long long)count, iterations);
      return 1;
    }
  }
  printf("%ld %.9f\n", exits, seconds);
  return 0;
}
