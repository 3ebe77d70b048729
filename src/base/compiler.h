/*
 * Compiler glue shared by every layer: branch hints, container_of, the
 * once-accessors for fields read without their lock, and the loud
 * precondition check (FreeBSD's KASSERT) used for internal invariants —
 * never for user input, which gets -errno.
 */
#ifndef SM_BASE_COMPILER_H
#define SM_BASE_COMPILER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Racy-by-design reads and writes: atomic so the compiler cannot tear or
 * fuse them, relaxed because the ordering comes from a lock or a fence. */
#define READ_ONCE(x)     __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WRITE_ONCE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define smp_load_acquire(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define smp_store_release(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define barrier() __asm__ __volatile__("" ::: "memory")

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	barrier();
#endif
}

#if defined(__SANITIZE_THREAD__)
#define SM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SM_TSAN 1
#endif
#endif

__attribute__((noreturn, format(printf, 5, 6)))
void sm_panic(const char *file, int line, const char *func, const char *cond,
	      const char *fmt, ...);

#define SM_ASSERT(cond, ...)                                                   \
	do {                                                                   \
		if (unlikely(!(cond)))                                         \
			sm_panic(__FILE__, __LINE__, __func__, #cond, __VA_ARGS__); \
	} while (0)

/* Thread-locals on hot paths: the initial-exec model avoids a call to
 * __tls_get_addr per access in position-independent code. */
#define SM_TLS_IE __attribute__((tls_model("initial-exec")))

#define PAGE_SHIFT 12
#define PAGE_SIZE  (1UL << PAGE_SHIFT)
#define PAGE_MASK  (~(PAGE_SIZE - 1))
#define PAGE_ALIGN(x) (((x) + PAGE_SIZE - 1) & PAGE_MASK)
#define offset_in_page(x) ((unsigned long)(x) & (PAGE_SIZE - 1))

#define IS_ERR_ADDR(x) ((unsigned long)(x) >= (unsigned long)-4095)

#define min(a, b) ((a) < (b) ? (a) : (b))
#define max(a, b) ((a) > (b) ? (a) : (b))

#endif
