// The real-time tripwire: this test binary replaces the allocator and the blocking primitives
// with versions that count a violation when called from a thread marked as the audio thread.
//
// Interposition works because symbols defined in the executable take precedence over libc's
// for every caller (libstdc++'s operator new, std::mutex, the code under test). Allocation
// forwards to glibc's __libc_* entry points; everything else to the next definition found by
// dlsym(RTLD_NEXT), resolved before main. Recording a violation must itself be real-time safe
// and must not recurse: a relaxed counter and the first offender's name in a fixed buffer.
#include "tripwire.hpp"

#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace stemd::test::tripwire {

namespace {
thread_local bool t_audio = false;
std::atomic<long> g_violations{0};
std::atomic<bool> g_first_taken{false};
char g_first[64] = {0};

void violation(const char* what) noexcept {
  if (!t_audio) return;
  g_violations.fetch_add(1, std::memory_order_relaxed);
  if (!g_first_taken.exchange(true)) {
    std::strncpy(g_first, what, sizeof g_first - 1);
  }
}
}  // namespace

void enter_audio() noexcept { t_audio = true; }
void leave_audio() noexcept { t_audio = false; }
bool in_audio() noexcept { return t_audio; }
long violations() noexcept { return g_violations.load(); }
const char* first_violation() noexcept { return g_first_taken.load() ? g_first : ""; }
void reset() noexcept {
  g_violations.store(0);
  g_first[0] = 0;
  g_first_taken.store(false);
}

}  // namespace stemd::test::tripwire

using stemd::test::tripwire::violation;

// ---------------------------------------------------------------- allocation
extern "C" {
void* malloc(size_t n) {
  violation("malloc");
  return __libc_malloc(n);
}
void free(void* p) {
  if (p) violation("free");
  __libc_free(p);
}
void* calloc(size_t a, size_t b) {
  violation("calloc");
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  violation("realloc");
  return __libc_realloc(p, n);
}
void* memalign(size_t al, size_t n) {
  violation("memalign");
  return __libc_memalign(al, n);
}
void* aligned_alloc(size_t al, size_t n) {
  violation("aligned_alloc");
  return __libc_memalign(al, n);
}
int posix_memalign(void** out, size_t al, size_t n) {
  violation("posix_memalign");
  void* p = __libc_memalign(al, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}

void* operator new(std::size_t n) {
  violation("operator new");
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  violation("operator new[]");
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  violation("operator new");
  return __libc_malloc(n ? n : 1);
}
void* operator new(std::size_t n, std::align_val_t al) {
  violation("operator new(aligned)");
  if (void* p = __libc_memalign(static_cast<size_t>(al), n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  if (p) violation("operator delete");
  __libc_free(p);
}
void operator delete[](void* p) noexcept {
  if (p) violation("operator delete[]");
  __libc_free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  if (p) violation("operator delete");
  __libc_free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  if (p) violation("operator delete[]");
  __libc_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  if (p) violation("operator delete(aligned)");
  __libc_free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  if (p) violation("operator delete(aligned)");
  __libc_free(p);
}

// ---------------------------------------------------------------- locks, waits, I/O
namespace {
template <typename F>
F next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}
using MutexFn = int (*)(pthread_mutex_t*);
using CondWaitFn = int (*)(pthread_cond_t*, pthread_mutex_t*);
using CondTimedFn = int (*)(pthread_cond_t*, pthread_mutex_t*, const struct timespec*);
using SemFn = int (*)(sem_t*);
using SemTimedFn = int (*)(sem_t*, const struct timespec*);
using NanoFn = int (*)(const struct timespec*, struct timespec*);
using ClockNanoFn = int (*)(clockid_t, int, const struct timespec*, struct timespec*);
using UsleepFn = int (*)(useconds_t);
using ReadFn = ssize_t (*)(int, void*, size_t);
using WriteFn = ssize_t (*)(int, const void*, size_t);
using PreadFn = ssize_t (*)(int, void*, size_t, off_t);
using RwLockFn = int (*)(pthread_rwlock_t*);

struct Real {
  MutexFn mutex_lock = next<MutexFn>("pthread_mutex_lock");
  MutexFn mutex_trylock = next<MutexFn>("pthread_mutex_trylock");
  CondWaitFn cond_wait = next<CondWaitFn>("pthread_cond_wait");
  CondTimedFn cond_timedwait = next<CondTimedFn>("pthread_cond_timedwait");
  SemFn sem_wait = next<SemFn>("sem_wait");
  SemTimedFn sem_timedwait = next<SemTimedFn>("sem_timedwait");
  NanoFn nanosleep = next<NanoFn>("nanosleep");
  ClockNanoFn clock_nanosleep = next<ClockNanoFn>("clock_nanosleep");
  UsleepFn usleep = next<UsleepFn>("usleep");
  ReadFn read = next<ReadFn>("read");
  WriteFn write = next<WriteFn>("write");
  PreadFn pread = next<PreadFn>("pread64");
  RwLockFn rdlock = next<RwLockFn>("pthread_rwlock_rdlock");
  RwLockFn wrlock = next<RwLockFn>("pthread_rwlock_wrlock");
};
Real& real() {
  static Real r;  // resolved on first use; the tests call tripwire::reset() before marking a thread
  return r;
}
[[maybe_unused]] const bool g_resolved = (real(), true);
}  // namespace

extern "C" {
int pthread_mutex_lock(pthread_mutex_t* m) {
  violation("pthread_mutex_lock");
  return real().mutex_lock(m);
}
int pthread_mutex_trylock(pthread_mutex_t* m) {
  violation("pthread_mutex_trylock");
  return real().mutex_trylock(m);
}
int pthread_cond_wait(pthread_cond_t* c, pthread_mutex_t* m) {
  violation("pthread_cond_wait");
  return real().cond_wait(c, m);
}
int pthread_cond_timedwait(pthread_cond_t* c, pthread_mutex_t* m, const struct timespec* t) {
  violation("pthread_cond_timedwait");
  return real().cond_timedwait(c, m, t);
}
int pthread_rwlock_rdlock(pthread_rwlock_t* l) {
  violation("pthread_rwlock_rdlock");
  return real().rdlock(l);
}
int pthread_rwlock_wrlock(pthread_rwlock_t* l) {
  violation("pthread_rwlock_wrlock");
  return real().wrlock(l);
}
int sem_wait(sem_t* s) {
  violation("sem_wait");
  return real().sem_wait(s);
}
int sem_timedwait(sem_t* s, const struct timespec* t) {
  violation("sem_timedwait");
  return real().sem_timedwait(s, t);
}
int nanosleep(const struct timespec* a, struct timespec* b) {
  violation("nanosleep");
  return real().nanosleep(a, b);
}
int clock_nanosleep(clockid_t c, int f, const struct timespec* a, struct timespec* b) {
  violation("clock_nanosleep");
  return real().clock_nanosleep(c, f, a, b);
}
int usleep(useconds_t u) {
  violation("usleep");
  return real().usleep(u);
}
ssize_t read(int fd, void* b, size_t n) {
  violation("read");
  return real().read(fd, b, n);
}
ssize_t write(int fd, const void* b, size_t n) {
  violation("write");
  return real().write(fd, b, n);
}
ssize_t pread64(int fd, void* b, size_t n, off_t o) {
  violation("pread");
  return real().pread(fd, b, n, o);
}
ssize_t pread(int fd, void* b, size_t n, off_t o) {
  violation("pread");
  return real().pread(fd, b, n, o);
}
}
