//! Open connections per output, reused across the nodes of a run: a
//! PostgreSQL or MariaDB connection costs a server process/thread and a
//! handshake, which a 1,000-model run would otherwise pay 1,000 times.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use super::{Connection, connect};
use crate::credentials::Credentials;

/// Idle connections per output.
pub struct Pool {
    creds: BTreeMap<String, Credentials>,
    idle: Mutex<BTreeMap<String, Vec<Box<dyn Connection>>>>,
}

impl Pool {
    pub fn new(creds: BTreeMap<String, Credentials>) -> Self {
        Pool { creds, idle: Mutex::new(BTreeMap::new()) }
    }

    /// The credentials of the outputs.
    pub fn creds(&self) -> &BTreeMap<String, Credentials> {
        &self.creds
    }

    /// An idle connection to `output`, or a new one.
    pub fn get(&self, output: &str) -> Result<Pooled<'_>, String> {
        let idle = self.idle.lock().ok().and_then(|mut m| m.get_mut(output).and_then(Vec::pop));
        let conn = match idle {
            Some(c) => c,
            None => {
                let creds = self.creds.get(output).ok_or_else(|| format!("output `{output}` is not in profiles.yml"))?;
                crate::retry::run(&format!("connecting to `{output}`"), || connect(creds))?
            }
        };
        Ok(Pooled { pool: self, output: output.to_string(), conn: Some(conn), reuse: false })
    }
}

/// A connection on loan. It goes back to the pool only when [`Pooled::release`]
/// was called (the node succeeded, so no transaction is left open); otherwise
/// it is closed.
pub struct Pooled<'a> {
    pool: &'a Pool,
    output: String,
    conn: Option<Box<dyn Connection>>,
    reuse: bool,
}

impl Pooled<'_> {
    /// Marks the connection clean: it returns to the pool when dropped.
    pub fn release(&mut self) {
        self.reuse = true;
    }
}

impl Deref for Pooled<'_> {
    type Target = dyn Connection;
    fn deref(&self) -> &Self::Target {
        self.conn.as_deref().expect("connection present until drop")
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn.as_deref_mut().expect("connection present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let (true, Some(c)) = (self.reuse, self.conn.take())
            && let Ok(mut m) = self.pool.idle.lock()
        {
            m.entry(std::mem::take(&mut self.output)).or_default().push(c);
        }
    }
}
