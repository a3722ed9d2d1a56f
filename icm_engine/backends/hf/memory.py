"""How the transformers backend keeps its process's memory in check on glibc, and what the CPU offers."""

from __future__ import annotations


def _glibc():
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc: nothing to give back this way
        return None


_LIBC = _glibc()

# mallopt's parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def release_freed_memory() -> None:
    """Return the free pages inside glibc's heap to the OS (called after each batch of a call).

    A batch's padded KV caches (tens of MB a layer) are freed after it, but the prefix store's new entries
    are allocated while they are alive and sit above them in the heap, so the heap cannot shrink and each
    batch's working memory would stay resident (bench/engine_log.md has the measurements).
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def keep_freed_memory_within_calls(mmap_threshold: int = 2**28, trim_threshold: int = 2**30) -> bool:
    """Let glibc hand the memory one tensor operation frees to the next one instead of to the OS.

    By default glibc serves blocks over its mmap threshold (at most 32 MB) with fresh mappings and gives
    the top of its heap back whenever more than its trim threshold lies free there, so whole-prompt passes
    unmapped and page-faulted their large intermediate tensors at nearly every operation, a large share of
    their CPU time spent in the kernel. With both thresholds fixed high, the same peak memory runs faster:
    release_freed_memory() still gives the memory back after each call and batch.
    Returns whether glibc took both settings.
    """
    if _LIBC is None or not hasattr(_LIBC, "mallopt"):
        return False
    # Setting a threshold also stops glibc from moving it by itself.
    mapped = _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
    return bool(mapped) and bool(_LIBC.mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def cpu_has_fast_bf16() -> bool:
    """bfloat16 is much faster than float32 with AMX/AVX-512-BF16, and much slower without them."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
