/*
 * compute.h - the compute token bucket of a region device, shared by the shim (which takes
 * tokens at every kernel launch) and the Python binding (which sets the rate).
 *
 * Launch cost = threads launched = grid x block (a graph launch: the sum over its kernel
 * nodes).  The bucket is two cumulative counters in the STATE file's usage block:
 *
 *   consumed  every launch adds its cost with ONE atomic fetch-add; the value it brings
 *             back is the launch's "ticket" (its place in line)
 *   granted   tokens refilled so far; a launch may run once granted >= its ticket
 *
 * level = granted - consumed (wrapping 64-bit arithmetic; negative while launches wait).
 * Refill is lazy: only a launch that finds its ticket beyond granted computes how many
 * tokens the configured rate has produced since compute_refill_ns, claims that interval by
 * CAS on compute_refill_ns (so two refillers never grant the same interval twice), and adds
 * them to granted, capped so that the level never exceeds the burst.  The interval consumed
 * is rounded up to whole tokens' worth of nanoseconds, so fractions carry over and a low
 * rate still refills exactly.  A waiter sleeps on compute_futex for the time its deficit
 * needs at the current rate (capped), then refills and re-checks; a rate change bumps the
 * futex word and wakes every waiter.  No locks anywhere: a process killed at any
 * instruction leaves at most its own ticket's cost consumed.
 *
 * The tenant can write its STATE file, so granted is policed from the LIMITS file, which it
 * cannot: the hypervisor keeps an account A (the most granted can legitimately be at time T:
 * it grows at the rate and never exceeds consumed + burst) and publishes a ceiling
 * C = A + TF_COMPUTE_HORIZON_NS worth of tokens + burst.  A launch runs only when its ticket
 * is within both granted and C (one more load on the fast path); beyond C, the slow path
 * extrapolates A at the rate to the present, so a stalled or restarting hypervisor never
 * stalls the worker, and no write to the state file yields more than the rate plus a burst
 * over any window.  Each check also clamps a granted counter raised beyond A and reports a
 * consumed counter wound back (tf_compute_police).
 */
#ifndef TF_COMPUTE_H
#define TF_COMPUTE_H

#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tf/shm_layout.h"

#define TF_COMPUTE_COST_MAX (1ULL << 48) /* one launch never costs more (saturates) */
#define TF_COMPUTE_WAIT_CAP_NS 10000000ULL /* longest single futex sleep: 10 ms */
#define TF_COMPUTE_DEFAULT_BURST_DIV 100u   /* burst 0 = rate x 10 ms */
#define TF_COMPUTE_HORIZON_NS 200000000ULL /* the ceiling runs this far ahead of the account */
#define TF_COMPUTE_GRANTED_RAISED 1u       /* tf_compute_police: granted was beyond the account */
#define TF_COMPUTE_CONSUMED_REWOUND 2u     /* tf_compute_police: consumed went backwards */

/* Threads launched by a grid x block shape, saturating at TF_COMPUTE_COST_MAX. */
static inline uint64_t tf_launch_cost(unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                                      unsigned int by, unsigned int bz) {
    unsigned long long grid = (unsigned long long)gx * gy, block = (unsigned long long)bx * by, t; /* < 2^64 */
    if (__builtin_umulll_overflow(grid, gz, &grid) | __builtin_umulll_overflow(block, bz, &block) |
        __builtin_umulll_overflow(grid, block, &t) || t > TF_COMPUTE_COST_MAX)
        return TF_COMPUTE_COST_MAX;
    return t;
}

static inline uint64_t tf_compute_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline uint64_t tf_compute_burst(uint64_t rate, uint64_t burst) {
    if (burst != 0) return burst;
    burst = rate / TF_COMPUTE_DEFAULT_BURST_DIV;
    return burst != 0 ? burst : 1;
}

/* Credits the tokens `rate` produced between compute_refill_ns and now, once. */
static inline void tf_compute_refill(tf_shm_usage *u, uint64_t rate, uint64_t burst, uint64_t now) {
    uint64_t last = __atomic_load_n(&u->compute_refill_ns, __ATOMIC_ACQUIRE);
    if (rate == 0 || now <= last) return;
    unsigned __int128 earned = (unsigned __int128)(now - last) * rate / 1000000000u;
    uint64_t consumed = __atomic_load_n(&u->compute_consumed, __ATOMIC_ACQUIRE);
    uint64_t granted = __atomic_load_n(&u->compute_granted, __ATOMIC_ACQUIRE);
    uint64_t cap = consumed + tf_compute_burst(rate, burst); /* granted never runs further ahead */
    int64_t room = (int64_t)(cap - granted);
    uint64_t add, upto;
    if (room <= 0) {
        add = 0;
        upto = now; /* full bucket: the interval's tokens overflow */
    } else if (earned >= (uint64_t)room) {
        add = (uint64_t)room;
        upto = now;
    } else {
        add = (uint64_t)earned;
        if (add == 0) return; /* less than one token so far: leave the interval to grow */
        /* Claim only the nanoseconds those whole tokens took (rounded up): fractions carry. */
        upto = last + (uint64_t)(((unsigned __int128)add * 1000000000u + rate - 1) / rate);
    }
    if (__atomic_compare_exchange_n(&u->compute_refill_ns, &last, upto, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
        add != 0)
        __atomic_add_fetch(&u->compute_granted, add, __ATOMIC_ACQ_REL);
}

/* Bounded futex sleep while *word == seen (shared mapping: no FUTEX_PRIVATE_FLAG). */
static inline void tf_compute_futex_wait(uint32_t *word, uint32_t seen, uint64_t ns) {
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ULL), .tv_nsec = (long)(ns % 1000000000ULL)};
    syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

/* Wakes every launch waiting on a device's bucket (after a rate change). */
static inline void tf_compute_wake(tf_shm_usage *u) {
    __atomic_add_fetch(&u->compute_futex, 1, __ATOMIC_ACQ_REL);
    syscall(SYS_futex, &u->compute_futex, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

static inline uint64_t tf_compute_tokens(uint64_t rate, uint64_t ns) {
    unsigned __int128 t = (unsigned __int128)rate * ns / 1000000000u;
    return t > UINT64_MAX / 4 ? UINT64_MAX / 4 : (uint64_t)t;
}

/* What granted may legitimately be now according to the LIMITS file (tenant-proof): the
 * account extrapolated at the rate, plus a burst of slack. */
static inline uint64_t tf_compute_allowed(const tf_shm_limit *lim, uint64_t rate, uint64_t burst, uint64_t now) {
    uint64_t account = __atomic_load_n(&lim->compute_account, __ATOMIC_ACQUIRE);
    uint64_t since = __atomic_load_n(&lim->compute_account_ns, __ATOMIC_ACQUIRE);
    return account + tf_compute_tokens(rate, now > since ? now - since : 0) + tf_compute_burst(rate, burst);
}

/* Hypervisor side, every tick: advances the account to now, publishes the ceiling, clamps a
 * granted counter the tenant raised beyond it, and says what it found (TF_COMPUTE_* bits). */
static inline unsigned tf_compute_police(tf_shm_limit *lim, tf_shm_usage *u, uint64_t now) {
    uint64_t rate = __atomic_load_n(&lim->compute_rate, __ATOMIC_ACQUIRE);
    uint64_t burst = __atomic_load_n(&lim->compute_burst, __ATOMIC_ACQUIRE), depth = tf_compute_burst(rate, burst);
    uint64_t consumed = __atomic_load_n(&u->compute_consumed, __ATOMIC_ACQUIRE);
    uint64_t seen = __atomic_load_n(&lim->compute_seen_consumed, __ATOMIC_ACQUIRE);
    unsigned found = (int64_t)(consumed - seen) < 0 ? TF_COMPUTE_CONSUMED_REWOUND : 0;
    __atomic_store_n(&lim->compute_seen_consumed, consumed, __ATOMIC_RELEASE);
    if (rate == 0) {
        __atomic_store_n(&lim->compute_ceiling, 0, __ATOMIC_RELEASE); /* unlimited: nothing to police */
        return found;
    }
    uint64_t account;
    if (__atomic_load_n(&lim->compute_ceiling, __ATOMIC_ACQUIRE) == 0) {
        uint64_t granted = __atomic_load_n(&u->compute_granted, __ATOMIC_ACQUIRE);
        account = (int64_t)(granted - (consumed + depth)) > 0 ? consumed + depth : granted; /* first check */
    } else {
        account = tf_compute_allowed(lim, rate, burst, now) - depth;
        if ((int64_t)(account - (consumed + depth)) > 0) account = consumed + depth; /* a full bucket stops */
    }
    __atomic_store_n(&lim->compute_account, account, __ATOMIC_RELEASE);
    __atomic_store_n(&lim->compute_account_ns, now, __ATOMIC_RELEASE);
    __atomic_store_n(&lim->compute_ceiling, account + tf_compute_tokens(rate, TF_COMPUTE_HORIZON_NS) + depth,
                     __ATOMIC_RELEASE);
    uint64_t granted = __atomic_load_n(&u->compute_granted, __ATOMIC_ACQUIRE);
    while ((int64_t)(granted - (account + depth)) > 0) {
        if (__atomic_compare_exchange_n(&u->compute_granted, &granted, account, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            found |= TF_COMPUTE_GRANTED_RAISED;
            break;
        }
    }
    return found;
}

/* Hypervisor side: new rate and depth.  Tokens earned at the old rate are credited first,
 * so a change never re-prices time that already passed; then every waiter wakes. */
static inline void tf_compute_set_rate(tf_shm_limit *lim, tf_shm_usage *u, uint64_t rate, uint64_t burst) {
    uint64_t now = tf_compute_now_ns();
    uint64_t old_rate = __atomic_load_n(&lim->compute_rate, __ATOMIC_ACQUIRE);
    /* The account is advanced at the old rate up to now, so the new one never re-prices the past. */
    if (__atomic_load_n(&lim->compute_ceiling, __ATOMIC_ACQUIRE) != 0) (void)tf_compute_police(lim, u, now);
    if (old_rate != 0)
        tf_compute_refill(u, old_rate, __atomic_load_n(&lim->compute_burst, __ATOMIC_ACQUIRE), now);
    else
        __atomic_store_n(&u->compute_refill_ns, now, __ATOMIC_RELEASE); /* unlimited time earns nothing */
    /* A shallower bucket loses what no longer fits (a deeper one starts no fuller). */
    uint64_t depth = tf_compute_burst(rate, burst), granted = __atomic_load_n(&u->compute_granted, __ATOMIC_ACQUIRE);
    uint64_t cap = __atomic_load_n(&u->compute_consumed, __ATOMIC_ACQUIRE) + depth;
    while ((int64_t)(granted - cap) > 0 &&
           !__atomic_compare_exchange_n(&u->compute_granted, &granted, cap, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
    __atomic_store_n(&lim->compute_burst, burst, __ATOMIC_RELEASE);
    __atomic_store_n(&lim->compute_rate, rate, __ATOMIC_RELEASE);
    if (__atomic_load_n(&lim->compute_ceiling, __ATOMIC_ACQUIRE) != 0) (void)tf_compute_police(lim, u, now);
    tf_compute_wake(u);
}

#endif /* TF_COMPUTE_H */
