//! Phase timings on stderr when `DVT_TIMINGS` is set (for profiling, not output).

use std::sync::LazyLock;
use std::time::Instant;

static ENABLED: LazyLock<bool> = LazyLock::new(|| std::env::var_os("DVT_TIMINGS").is_some());
static START: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Records the end of a phase.
pub fn phase(name: &str) {
    if *ENABLED {
        let rss = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string()))
            .unwrap_or_default();
        eprintln!("[timing] {:>8.1} ms  peak {rss:>7} kB  {name}", START.elapsed().as_secs_f64() * 1000.0);
    }
}
