//! The binary's allocator: mimalloc, and memory a burst freed given back.

/// glibc's per-thread arenas grow and shrink with `mprotect` under request load (~1 call per 5
/// requests measured); mimalloc keeps per-thread free lists without system calls.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gives memory freed after a burst back to the system: mimalloc purges freed arena memory only
/// when it next collects, which an idle process never does (20,000 WebSockets closing left 107 MB
/// resident, 19 MB before; bench/hub-bench.sh). Arena memory is committed as it is used
/// (`.cargo/config.toml`); purging at once instead cost the proxy ~6 %.
pub fn return_freed_memory() {
    let collect = || loop {
        std::thread::sleep(std::time::Duration::from_secs(5));
        // SAFETY: mi_collect takes no pointer; `false` collects only what is due.
        unsafe { libmimalloc_sys::mi_collect(false) };
    };
    let _ = std::thread::Builder::new()
        .name("mi-collect".into())
        .spawn(collect);
}
