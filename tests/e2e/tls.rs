//! TLS to the test servers (scripts/services.sh gives both a self-signed
//! certificate for 127.0.0.1): PostgreSQL's `sslmode` and MariaDB's
//! `ssl_mode`, from "encrypt only" to full verification, and their refusals.

use std::collections::BTreeMap;

use dvt_runtime::connectors::{self, Connection};
use dvt_runtime::credentials::Credentials;

fn creds(kind: &str, port_var: &str, extra: &[(&str, String)]) -> Credentials {
    let port = std::env::var(port_var).unwrap_or_else(|_| panic!("{port_var} is not set: run `make test`"));
    let mut s: BTreeMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    s.insert("port".into(), port);
    Credentials::new("tls", kind, s, std::env::temp_dir())
}

fn ca() -> String {
    std::env::var("DVT_TEST_TLS_CA").expect("DVT_TEST_TLS_CA is not set: run `make test`")
}

fn pg_ssl(extra: &[(&str, String)]) -> Result<String, String> {
    let mut c = connectors::connect(&creds("postgres", "DVT_TEST_PG_PORT", extra))?;
    let r = c.query("select ssl from pg_stat_ssl where pid = pg_backend_pid()")?;
    Ok(r.rows[0][0].clone().unwrap_or_default())
}

fn maria_cipher(extra: &[(&str, String)]) -> Result<String, String> {
    let mut c: Box<dyn Connection> = connectors::connect(&creds("mysql", "DVT_TEST_MARIA_PORT", extra))?;
    let r = c.query("show session status like 'Ssl_cipher'")?;
    Ok(r.rows[0][1].clone().unwrap_or_default())
}

#[test]
fn postgres_sslmodes() {
    assert_eq!(pg_ssl(&[("sslmode", "disable".into())]).unwrap(), "f");
    assert_eq!(pg_ssl(&[]).unwrap(), "t", "the default (prefer) encrypts when the server can");
    assert_eq!(pg_ssl(&[("sslmode", "require".into())]).unwrap(), "t");
    assert_eq!(pg_ssl(&[("sslmode", "verify-full".into()), ("sslrootcert", ca())]).unwrap(), "t");
    assert_eq!(pg_ssl(&[("sslmode", "verify-ca".into()), ("sslrootcert", ca())]).unwrap(), "t");
    // Not signed by the system's CAs: verification refuses it.
    let e = pg_ssl(&[("sslmode", "verify-full".into())]).unwrap_err();
    assert!(e.contains("cannot connect") && e.to_lowercase().contains("certificate"), "{e}");
    // The certificate names 127.0.0.1, not localhost: verify-full refuses, verify-ca accepts.
    let host = [("host", "localhost".to_string()), ("sslrootcert", ca())];
    let e = pg_ssl(&[host[0].clone(), host[1].clone(), ("sslmode", "verify-full".into())]).unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert_eq!(pg_ssl(&[host[0].clone(), host[1].clone(), ("sslmode", "verify-ca".into())]).unwrap(), "t");
    let e = pg_ssl(&[("sslmode", "sometimes".into())]).unwrap_err();
    assert!(e.contains("verify-full"), "{e}");
}

#[test]
fn mariadb_ssl_modes() {
    assert_eq!(maria_cipher(&[]).unwrap(), "", "disabled by default");
    assert!(!maria_cipher(&[("ssl_mode", "required".into())]).unwrap().is_empty());
    assert!(!maria_cipher(&[("ssl_mode", "preferred".into())]).unwrap().is_empty());
    assert!(!maria_cipher(&[("ssl_mode", "VERIFY_IDENTITY".into()), ("ssl_ca", ca())]).unwrap().is_empty());
    let e = maria_cipher(&[("ssl_mode", "verify_identity".into())]).unwrap_err();
    assert!(e.contains("cannot connect"), "{e}");
    let e = maria_cipher(&[("ssl_mode", "maybe".into())]).unwrap_err();
    assert!(e.contains("verify_identity"), "{e}");
}
