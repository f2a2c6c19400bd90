{
  # Built by `npm install` (package.json "install": node-gyp rebuild --directory hypervisors/kvm).
  # Uses the system's <linux/kvm.h>; no prebuilt binaries.
  "targets": [
    {
      "target_name": "tsvmm_kvm",
      "sources": [
        "src/addon.cc",
        "src/errors.cc",
        "src/mappings.cc",
        "src/memory.cc",
        "src/eventfd.cc",
        "src/kick.cc",
        "src/system.cc",
        "src/vm.cc",
        "src/vcpu.cc",
        "src/ioregion.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      # Never unloaded: the kick signal handler and the vCPU table must outlive every worker
      # thread that loaded the addon (Node unloads an addon when its last worker exits).
      "ldflags": ["-Wl,-z,nodelete"],
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}
