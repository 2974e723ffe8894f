//! Keeping a long-lived worker's memory flat, without making its threads queue for it.
//!
//! glibc's malloc gives threads that allocate concurrently their own arenas, up to eight per
//! core, and rarely returns their freed memory to the system. A worker allocates from the
//! tokio threads and from the blocking threads that parse snapshots, evaluate principals
//! and build reports, so its resident memory kept growing night after night although
//! nothing leaked: the soak test measured 145 MB after 5 nights and 241 MB after 30, and 60
//! to 97 MB throughout with the arenas capped at two.
//!
//! Two arenas in all, though, made a batch's evaluation threads wait for each other's
//! allocations: on the bundled sample's largest account, alone, the analysis of its 2,400
//! principals took 238–265 ms of thread time on two threads with two arenas, 170–181 ms on
//! one thread, and 201–217 ms with four or eight arenas; reading its results back in
//! finalize took 290–310 ms with two and 180–194 ms with four or eight. [`cap_malloc_arenas`]
//! allows two arenas per core the process may use.

/// Caps glibc's malloc at two arenas per core this process may use (at least two; no
/// effect on other C libraries). Call first thing in `main`, before threads start.
pub fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = libc::c_int::try_from(2 * cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes a malloc tunable; it is called before any other
        // thread exists, and M_ARENA_MAX with a positive value is a documented setting.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas.max(2));
        }
    }
}
