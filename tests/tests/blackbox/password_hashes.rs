//! Stored password hashes, as a log-in meets them: hashes of other
//! parameters and of the other implementation keep verifying and are
//! upgraded; a hash whose stored cost is hostile is refused at once.

use std::time::{Duration, Instant};

use argon2::PasswordHasher as _;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::*;

/// Stored costs no verification may run: 4 TiB of memory, and four billion
/// passes over 19 MiB (hours of CPU for one log-in, before the fix).
const HOSTILE: [&str; 2] = [
    "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
    "$argon2id$v=19$m=19456,t=4294967295,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
];

async fn set_password_hash(url: &str, email: &str, phc: &str) {
    let db = sea_orm::Database::connect(url).await.unwrap();
    let backend = db.get_database_backend();
    let sql = if backend == sea_orm::DbBackend::Postgres {
        "UPDATE users SET password_hash = $1 WHERE email = $2"
    } else {
        "UPDATE users SET password_hash = ? WHERE email = ?"
    };
    let done = db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            vec![phc.into(), email.into()],
        ))
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

async fn password_hash(url: &str, email: &str) -> String {
    let db = sea_orm::Database::connect(url).await.unwrap();
    let backend = db.get_database_backend();
    let sql = if backend == sea_orm::DbBackend::Postgres {
        "SELECT password_hash FROM users WHERE email = $1"
    } else {
        "SELECT password_hash FROM users WHERE email = ?"
    };
    db.query_one_raw(Statement::from_sql_and_values(
        backend,
        sql,
        vec![email.into()],
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get("", "password_hash")
    .unwrap()
}

fn database_url(data_dir: &std::path::Path, url: Option<String>) -> String {
    url.unwrap_or_else(|| format!("sqlite://{}", data_dir.join("portcullis.db").display()))
}

#[tokio::test]
async fn stored_hashes_verify_on_either_backend_and_hostile_ones_cost_nothing() {
    for backend in ["fast", "reference"] {
        let app = spawn_app().await;
        let (older, _) = app.new_user().await;
        let (memory_hog, _) = app.new_user().await;
        let (time_hog, _) = app.new_user().await;
        let (dir, data_dir, url) = app.stop_keeping_data().await;
        let url_for_db = database_url(&data_dir, url.clone());

        // A hash from an earlier configuration, written by the reference
        // implementation: fewer KiB, more passes.
        let old_phc = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(4096, 3, 1, Some(32)).unwrap(),
        )
        .hash_password_with_salt(PASSWORD.as_bytes(), b"an older salt!!!")
        .unwrap()
        .to_string();
        set_password_hash(&url_for_db, &older, &old_phc).await;
        set_password_hash(&url_for_db, &memory_hog, HOSTILE[0]).await;
        set_password_hash(&url_for_db, &time_hog, HOSTILE[1]).await;

        let app = spawn_with(Options {
            data_dir: Some(data_dir.clone()),
            database_url: url.clone(),
            env: vec![("PORTCULLIS_ARGON2_BACKEND", backend.to_owned())],
            ..Options::default()
        })
        .await;

        // The older hash verifies and is replaced by one of today's settings.
        let login = app.log_in(&older, PASSWORD).await;
        assert_eq!(login.status(), StatusCode::OK, "{backend}");
        let upgraded = password_hash(&url_for_db, &older).await;
        assert!(
            upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{backend}: {upgraded}"
        );
        assert_ne!(upgraded, old_phc);
        assert_eq!(app.log_in(&older, PASSWORD).await.status(), StatusCode::OK);
        let wrong = app.log_in(&older, "not the password at all, no").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{backend}");

        // The hostile ones are refused before any work is done: at once,
        // and the server goes on serving everyone else.
        for hostile in [&memory_hog, &time_hog] {
            let started = Instant::now();
            let refused = app.log_in(hostile, PASSWORD).await;
            assert!(started.elapsed() < Duration::from_secs(5), "{backend}");
            let body = assert_problem(refused, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
            assert!(!body.to_string().contains("4294967295"), "{body}");
        }
        assert_eq!(app.health_live().await.status(), StatusCode::OK);
        let (_, _) = app.new_user().await;
        assert_eq!(app.log_in(&older, PASSWORD).await.status(), StatusCode::OK);

        app.stop().await;
        drop(dir);
    }
}
