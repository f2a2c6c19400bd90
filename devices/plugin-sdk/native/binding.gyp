{
  # -z nodelete: the dispatch table is process-wide and the KVM addon keeps a pointer to
  # tsvmm_ioregion_dispatch, so this library must stay mapped after a worker that loaded it exits.
  "targets": [
    {
      "target_name": "tsvmm_fdio",
      "sources": ["src/fdio.cc", "src/ioregion.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "cflags_cc!": ["-fno-exceptions"],
      "ldflags": ["-Wl,-z,nodelete"]
    }
  ]
}
