//! Phase timings on stderr when `DVT_TIMINGS` is set (for profiling, not output).

use std::sync::LazyLock;
use std::time::Instant;

static ENABLED: LazyLock<bool> = LazyLock::new(|| std::env::var_os("DVT_TIMINGS").is_some());
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Starts the clock (first thing in `main`), so the first phase counts from process start.
pub fn start() {
    LazyLock::force(&START);
}

/// Records the end of a phase.
pub fn phase(name: &str) {
    if *ENABLED {
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string()))
            .unwrap_or_default();
        eprintln!("[timing] {:>8.1} ms  peak {rss:>7} kB  cpu {:>7.1} ms  {name}", START.elapsed().as_secs_f64() * 1000.0, cpu_ms());
    }
}

/// CPU time of the process so far (user + system, all threads), to tell serial phases from parallel ones.
fn cpu_ms() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct, which `getrusage` fills.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut usage) == 0).then_some(usage)
    };
    let Some(usage) = usage else { return 0.0 };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// Times one node's compilation; with `DVT_TIMINGS`, the slowest nodes are listed by [`slowest`].
pub fn node<T>(id: &str, f: impl FnOnce() -> T) -> T {
    if !*ENABLED {
        return f();
    }
    let start = Instant::now();
    let out = f();
    let took = start.elapsed().as_secs_f64();
    if let Ok(mut all) = NODES.lock() {
        all.push((took, id.to_string()));
    }
    out
}

static NODES: std::sync::Mutex<Vec<(f64, String)>> = std::sync::Mutex::new(Vec::new());

/// Prints the `n` slowest nodes timed by [`node`] (with `DVT_TIMINGS`).
pub fn slowest(n: usize) {
    if !*ENABLED {
        return;
    }
    if let Ok(mut all) = NODES.lock() {
        all.sort_by(|a, b| b.0.total_cmp(&a.0));
        let total: f64 = all.iter().map(|x| x.0).sum();
        eprintln!("[timing] {} nodes, {:.1} ms in all", all.len(), total * 1000.0);
        for (t, id) in all.iter().take(n) {
            eprintln!("[timing] {:>8.1} ms  {id}", t * 1000.0);
        }
    }
}
