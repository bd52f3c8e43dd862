/// jemalloc rather than glibc's malloc: the layer jobs free large column
/// buffers on many threads at once, and glibc either contended on a few
/// arenas (two of them: bronze + silver on 200k tracks took 5.9 s, with
/// the cores a fifth idle) or kept what each of many arenas freed (sixteen:
/// 4.7 s, peaking ~150 MB higher). jemalloc with the options below did it
/// in 4.7 s at glibc's lower peak; mimalloc spent 4 s in the kernel and
/// peaked 350 MB higher.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (an operator's
/// `_RJEM_MALLOC_CONF` still wins): one arena per CPU rather than four
/// (as fast, 20-30 MB lower at 10k and 200k tracks), and a background thread
/// returning freed pages to the system after a second (half a second cost
/// 0.4 s at 200k).
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: MallocConf = MallocConf(
    c"percpu_arena:percpu,background_thread:true,max_background_threads:1,\
      dirty_decay_ms:1000,muzzy_decay_ms:0"
        .as_ptr(),
);

/// The C string jemalloc reads: a plain pointer, as `const char *`.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a constant C string, never written.
unsafe impl Sync for MallocConf {}

fn main() -> std::process::ExitCode {
    // Crash tests pause the process at named points (FAILPOINTS) and kill it.
    #[cfg(feature = "failpoints")]
    let _fail_points = fail::FailScenario::setup();
    soundlake::cli::main()
}
