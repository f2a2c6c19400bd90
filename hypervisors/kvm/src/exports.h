// Each source file adds its functions to the module's exports.
#pragma once

#include <napi.h>

namespace tsvmm {

void ExportMemory(Napi::Env env, Napi::Object exports);
void ExportEventfd(Napi::Env env, Napi::Object exports);
void ExportSystem(Napi::Env env, Napi::Object exports);
void ExportVm(Napi::Env env, Napi::Object exports);
void ExportVcpu(Napi::Env env, Napi::Object exports);

}  // namespace tsvmm
