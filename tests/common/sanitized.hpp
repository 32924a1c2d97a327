// Whether this build runs under a sanitizer (ASan or TSan), for tests whose figures the
// sanitizer's runtime changes (RSS and mallinfo2 under its allocator and quarantine, slower loops).
// GCC says so with __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__; clang 14 (the asan preset's
// compiler) defines neither and answers __has_feature() instead: test both, never one alone.
//   #if STEMD_TEST_SANITIZED  (preprocessor)      test::kSanitized  (C++)
#pragma once

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define STEMD_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define STEMD_TEST_SANITIZED 1
#endif
#endif
#ifndef STEMD_TEST_SANITIZED
#define STEMD_TEST_SANITIZED 0
#endif

namespace stemd::test {
inline constexpr bool kSanitized = STEMD_TEST_SANITIZED != 0;
}  // namespace stemd::test
