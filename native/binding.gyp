{
  # Built by `npm install` (package.json "install": node-gyp rebuild --directory native), from
  # the system's <linux/kvm.h> and Node's headers; no prebuilt binaries.
  #
  # One source tree, two modules:
  #   tsvmm_vmm     the VMM's: KVM ioctls and the vCPU run loop, the ioregion dispatch table,
  #                 guest RAM memfds, and the fd I/O of the plugin protocol;
  #   tsvmm_device  a device process's: the same fd I/O sources and nothing else.
  # NAPI_VERSION 9 is what Node 20 provides, and what <node.h> (needed by vmm/memfd.cc) defines.
  # -z nodelete: never unloaded, because the kick signal handler, the vCPU table and the dispatch
  # table must outlive every worker thread that loaded the module (Node unloads an addon when its
  # last worker exits). -fvisibility=hidden: a process that loads both modules (a test) keeps
  # each module's functions to itself.
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=9", "NAPI_CPP_EXCEPTIONS"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "ldflags": ["-Wl,-z,nodelete"],
    "conditions": [
      ["OS!='linux'", { "type": "none" }]
    ]
  },
  "variables": {
    "fdio_sources": [
      "src/common/errors.cc",
      "src/fdio/sockets.cc",
      "src/fdio/eventfd.cc",
      "src/fdio/mappings.cc",
      "src/fdio/watcher.cc"
    ]
  },
  "targets": [
    {
      "target_name": "tsvmm_vmm",
      "sources": [
        "<@(fdio_sources)",
        "src/vmm/module.cc",
        "src/vmm/memfd.cc",
        "src/ioregion/table.cc",
        "src/kvm/kick.cc",
        "src/kvm/system.cc",
        "src/kvm/vm.cc",
        "src/kvm/vcpu.cc",
        "src/kvm/ioregion-exit.cc"
      ]
    },
    {
      "target_name": "tsvmm_device",
      "sources": [
        "<@(fdio_sources)",
        "src/fdio/device.cc"
      ]
    }
  ]
}
