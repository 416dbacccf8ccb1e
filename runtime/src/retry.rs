//! Retries for transient faults (issue 14): a refused or reset connection, a
//! PostgreSQL backend terminated or refused for too many connections, a
//! serialization failure, a MariaDB deadlock or lost connection. Each retry
//! waits exponentially longer with jitter and logs one line; any other error
//! fails at once. Only idempotent work is retried (connecting, reading a
//! fragment): writes are made safe by staging instead (SPEC §4).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Attempts in all (the first one included).
pub const ATTEMPTS: u32 = 4;
/// The wait before the first retry; it doubles for each further one.
const FIRST_WAIT: Duration = Duration::from_millis(200);

/// Messages (lower case) that mark an error as transient.
const TRANSIENT: [&str; 18] = [
    "connection refused",
    "connection reset",
    "broken pipe",
    "terminating connection due to administrator command",
    "server closed the connection unexpectedly",
    "connection closed",
    "unexpected eof",
    "too many connections",
    "could not serialize access",
    "deadlock found",
    "lost connection",
    "server has gone away",
    // MariaDB `KILL <connection>`: the client sees the socket close, or error 1927.
    "server disconnected",
    "connection was killed",
    "the database system is starting up",
    "the database system is shutting down",
    "57p01",
    "40001",
];

/// Whether an error message describes a fault worth retrying.
pub fn is_transient(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    TRANSIENT.iter().any(|t| m.contains(t))
}

/// Runs `attempt` until it succeeds, fails for a non-transient reason, or has
/// been tried [`ATTEMPTS`] times. `what` names the work in the log line.
pub fn run<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    run_where(|| attempt().map_err(|e| (e, Some(what.to_string()))))
}

/// Like [`run`], for work where only some failures may be retried: `attempt`
/// fails with its error and, when starting over is safe, what to call the
/// retry in the log line.
pub fn run_where<T>(mut attempt: impl FnMut() -> Result<T, (String, Option<String>)>) -> Result<T, String> {
    let mut n = 1;
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err((e, Some(what))) if n < ATTEMPTS && is_transient(&e) => {
                let wait = backoff(n);
                eprintln!("retrying {what} in {:.2} s (attempt {} of {ATTEMPTS}) after a transient error: {e}", wait.as_secs_f64(), n + 1);
                std::thread::sleep(wait);
                n += 1;
            }
            Err((e, _)) if n > 1 => return Err(format!("{e} (after {n} attempts)")),
            Err((e, _)) => return Err(e),
        }
    }
}

/// The wait before retry `n` (1-based): doubling from [`FIRST_WAIT`], with ±50 % jitter
/// so that workers hit by one fault do not all come back at once.
fn backoff(n: u32) -> Duration {
    let base = FIRST_WAIT * 2u32.pow(n - 1);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let jitter = 0.5 + f64::from(nanos % 1000) / 1000.0;
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_retried_and_others_fail_at_once() {
        let mut calls = 0;
        let r = run("test", || {
            calls += 1;
            if calls < 3 { Err("db error: FATAL: terminating connection due to administrator command".into()) } else { Ok(calls) }
        });
        assert_eq!(r, Ok(3));
        let mut calls = 0;
        let r: Result<(), _> = run("test", || {
            calls += 1;
            Err("relation \"x\" does not exist".into())
        });
        assert_eq!((calls, r.unwrap_err().contains("after")), (1, false));
        let mut calls = 0;
        let r: Result<(), _> = run("test", || {
            calls += 1;
            Err("Connection refused (os error 111)".into())
        });
        assert_eq!(calls, ATTEMPTS);
        assert!(r.unwrap_err().ends_with("(after 4 attempts)"));
        assert!(is_transient("fragment `x` on `maria`: IoError { server disconnected }"));
        assert!(!is_transient("ERROR 1317 (70100): Query execution was interrupted"));
        for n in 1..=3 {
            let w = backoff(n);
            let base = FIRST_WAIT * 2u32.pow(n - 1);
            assert!(w >= base / 2 && w <= base * 3 / 2, "{w:?}");
        }
    }
}
