{
  "targets": [
    {
      "target_name": "tsvmm_fdio",
      "sources": ["src/fdio.cc", "src/ioregion.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fvisibility=hidden"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
