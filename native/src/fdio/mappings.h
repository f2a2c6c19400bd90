// Host mappings (guest RAM memfds, kvm_run pages, guest RAM and state memory mapped by plugins)
// exposed to JavaScript as external ArrayBuffers.
//
// Lifetime: a mapping is released exactly once, either by unmap() (which first detaches the
// ArrayBuffer so that every JS view of it becomes empty instead of dangling) or by the
// ArrayBuffer's finalizer when it is garbage-collected or its environment shuts down. Live
// mappings are also kept in a registry so that the VMM can check that memory handed to KVM
// (memory slots) is one of its own mappings and not a JS heap buffer that could be freed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include <napi.h>

namespace tsvmm {

// The largest mapping an ArrayBuffer can hold in Node 20 (buffer.constants.MAX_LENGTH).
constexpr size_t kMaxMappingBytes = size_t{1} << 32;

// Wraps [addr, addr+length) (from mmap) in an external ArrayBuffer that owns it.
// `beforeUnmap`, when given, runs right before the pages are unmapped (a vCPU's kvm_run: the
// vCPU is released first, so no kick writes into pages that are gone).
Napi::ArrayBuffer ExposeMapping(Napi::Env env, void* addr, size_t length, std::function<void()> beforeUnmap = {});

// Unmaps the mapping behind `buffer` (must be one of ours) and detaches the buffer.
void Unmap(Napi::Env env, Napi::ArrayBuffer buffer);

// True when [data, data+length) lies inside one live mapping.
bool IsInsideMapping(const void* data, size_t length);

}  // namespace tsvmm
