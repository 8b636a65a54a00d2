//! A hint to the processor, for state read at random a little later.

/// Asks the processor to bring the cache line holding `item` into its cache, for state read
/// at random a little later: tables larger than the caches are read from memory, and a read
/// that waits holds up what follows it, where a prefetch does not.
#[allow(unsafe_code)]
#[inline(always)]
pub(crate) fn prefetch<T>(item: &T) {
    // SAFETY: a prefetch is a hint: it reads nothing the program sees and never faults,
    // whatever the address (this one is a reference's).
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (item as *const T).cast(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}
