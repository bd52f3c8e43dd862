fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    // Crash tests pause the process at named points (FAILPOINTS) and kill it.
    #[cfg(feature = "failpoints")]
    let _fail_points = fail::FailScenario::setup();
    soundlake::cli::main()
}

/// glibc gives busy threads arenas of their own (up to 8 per core) and keeps
/// what they free for reuse, so the layer jobs' worker threads, freeing
/// large column buffers all the time, held far more memory than they used:
/// bronze + silver on 200k tracks peaked at ~550 MB. Two arenas bring that
/// to ~370 MB at the same speed; lower trim thresholds saved more memory
/// but cost a quarter more time in page faults, and mimalloc peaked higher.
/// An operator's MALLOC_ARENA_MAX still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before
        // any other thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
