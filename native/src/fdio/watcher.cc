// A libuv poll handle on one fd, so the event loop can wait on the sockets and eventfds of the
// plugin protocol. new Watcher(fd, (events: number, error?: string) => void); start(events) with
// 1 = readable (or hung up), 2 = writable; stop(); close() (idempotent). The fd is not owned:
// close() the watcher before closing the fd.
#include <uv.h>

#include <string>
#include <vector>

#include "../common/errors.h"
#include "../common/exports.h"

namespace tsvmm {

namespace {

class Watcher : public Napi::ObjectWrap<Watcher> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Watcher",
                       {InstanceMethod("start", &Watcher::Start), InstanceMethod("stop", &Watcher::Stop),
                        InstanceMethod("close", &Watcher::Close)});
  }

  explicit Watcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Watcher>(info) {
    Napi::Env env = info.Env();
    int fd = ArgInt(info, 0, "Watcher", "fd");
    if (info.Length() < 2 || !info[1].IsFunction()) ThrowType(env, "Watcher", "'callback' must be a function");
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new uv_poll_t;
    int r = uv_poll_init(loop, handle_, fd);
    if (r != 0) {
      delete handle_;
      handle_ = nullptr;
      throw Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(r));
    }
    handle_->data = this;
  }

  ~Watcher() override { CloseHandle(); }

 private:
  static void OnPoll(uv_poll_t* h, int status, int events) {
    auto* self = static_cast<Watcher*>(h->data);
    if (!self) return;
    Napi::Env env = self->callback_.Env();
    Napi::HandleScope scope(env);
    int ev = (events & UV_READABLE ? 1 : 0) | (events & UV_WRITABLE ? 2 : 0) | (events & UV_DISCONNECT ? 1 : 0);
    std::vector<napi_value> args{Napi::Number::New(env, status < 0 ? 1 : ev)};
    if (status < 0) args.push_back(Napi::String::New(env, uv_strerror(status)));
    self->callback_.MakeCallback(env.Global(), args);
  }

  void CloseHandle() {
    if (!handle_) return;
    uv_poll_stop(handle_);
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    int ev = info.Length() > 0 ? ArgInt(info, 0, "Watcher.start", "events") : 1;
    if (!handle_) return info.Env().Undefined();
    if (!ref_) { Ref(); ref_ = true; }  // keep the JS object alive while the handle can fire
    uv_poll_start(handle_, (ev & 1 ? UV_READABLE | UV_DISCONNECT : 0) | (ev & 2 ? UV_WRITABLE : 0), OnPoll);
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_) uv_poll_stop(handle_);
    if (ref_) { Unref(); ref_ = false; }
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseHandle();
    if (ref_) { Unref(); ref_ = false; }
    return info.Env().Undefined();
  }

  Napi::FunctionReference callback_;
  uv_poll_t* handle_ = nullptr;
  bool ref_ = false;
};

}  // namespace

void ExportWatcher(Napi::Env env, Napi::Object exports) {
  exports.Set("Watcher", Watcher::Init(env));
}

}  // namespace tsvmm
