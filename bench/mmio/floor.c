/*
 * bench/mmio C floor: what an MMIO access to an out-of-process device costs at the least on
 * this host. Loads a guest image written by bench/mmio/run.ts (the same format as
 * bench/exits: "TSVMMIMG", u64 RAM size, struct kvm_regs, struct kvm_sregs, RAM) and runs it
 * with the tightest C loop, in one of two modes:
 *
 *   raw     every MMIO exit is answered inline (the raw exit cost);
 *   socket  every MMIO exit is forwarded as a 32-byte ioregionfd record over a SOCK_SEQPACKET
 *           socket to a forked C responder process, which answers reads and non-posted writes
 *           (exit + one socket round trip: the best a VMM-side ioregionfd can do).
 *
 *   mmio-floor <image> <raw|socket> <posted 0|1> <iterations>
 * prints: <accesses> <seconds>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DONE_PORT 0xe0
#define KVM_TSS_ADDRESS 0xfffbd000u
#define KVM_IDENTITY_MAP_ADDRESS 0xfffbc000ull

static void die(const char *what) {
  fprintf(stderr, "mmio-floor: %s failed: %s\n", what, strerror(errno));
  exit(1);
}

static void responder(int fd) {
  uint8_t cmd[32], resp[32] = {0};
  for (;;) {
    ssize_t n = recv(fd, cmd, sizeof cmd, 0);
    if (n <= 0) _exit(0);
    if (cmd[1] & 0x10) {
      uint64_t v = 1;
      memcpy(resp, &v, 8);
      if (send(fd, resp, 32, MSG_NOSIGNAL) != 32) _exit(1);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: mmio-floor <image> <raw|socket> <posted 0|1> <iterations>\n");
    return 2;
  }
  int use_socket = strcmp(argv[2], "socket") == 0;
  int posted = atoi(argv[3]);
  long iterations = atol(argv[4]);

  FILE *f = fopen(argv[1], "rb");
  if (!f) die("open image");
  char magic[8];
  uint64_t ram_size;
  struct kvm_regs regs;
  struct kvm_sregs sregs;
  if (fread(magic, 8, 1, f) != 1 || memcmp(magic, "TSVMMIMG", 8) != 0 || fread(&ram_size, 8, 1, f) != 1 ||
      fread(&regs, sizeof regs, 1, f) != 1 || fread(&sregs, sizeof sregs, 1, f) != 1) {
    fprintf(stderr, "mmio-floor: %s is not a guest image\n", argv[1]);
    return 1;
  }

  int sv[2] = {-1, -1};
  pid_t child = -1;
  if (use_socket) {
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair");
    child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
      close(sv[0]);
      responder(sv[1]);
    }
    close(sv[1]);
  }

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  if (ioctl(vm, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDRESS) < 0) die("KVM_SET_TSS_ADDR");
  uint64_t identity = KVM_IDENTITY_MAP_ADDRESS;
  if (ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0) die("KVM_SET_IDENTITY_MAP_ADDR");
  if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");
  uint8_t *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (ram == MAP_FAILED) die("mmap RAM");
  if (fread(ram, ram_size, 1, f) != 1) {
    fprintf(stderr, "mmio-floor: image truncated\n");
    return 1;
  }
  fclose(f);
  struct kvm_userspace_memory_region region = {.slot = 0, .guest_phys_addr = 0, .memory_size = ram_size, .userspace_addr = (uintptr_t)ram};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  int mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");

  long accesses = 0;
  uint8_t cmd[32] = {0}, resp[32];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR) continue;
      die("KVM_RUN");
    }
    if (run->exit_reason == KVM_EXIT_IO && run->io.port == DONE_PORT) break;
    if (run->exit_reason != KVM_EXIT_MMIO) {
      fprintf(stderr, "mmio-floor: unexpected exit %u\n", run->exit_reason);
      return 1;
    }
    accesses++;
    if (!use_socket) {
      if (!run->mmio.is_write) memset(run->mmio.data, 1, run->mmio.len);
      continue;
    }
    int want = !run->mmio.is_write || !posted;
    cmd[0] = run->mmio.is_write;
    cmd[1] = (uint8_t)((run->mmio.len == 8 ? 3 : run->mmio.len == 4 ? 2 : run->mmio.len == 2 ? 1 : 0) | (want ? 0x10 : 0));
    memcpy(cmd + 16, &run->mmio.phys_addr, 8);
    memcpy(cmd + 24, run->mmio.data, 8);
    if (send(sv[0], cmd, 32, MSG_NOSIGNAL) != 32) die("send");
    if (want) {
      if (recv(sv[0], resp, sizeof resp, 0) != 32) die("recv");
      if (!run->mmio.is_write) memcpy(run->mmio.data, resp, run->mmio.len);
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  if (accesses != iterations) {
    fprintf(stderr, "mmio-floor: expected %ld accesses, saw %ld\n", iterations, accesses);
    return 1;
  }
  if (use_socket) {
    close(sv[0]);
    waitpid(child, NULL, 0);
  }
  printf("%ld %.9f\n", accesses, seconds);
  return 0;
}
