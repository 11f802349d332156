//! Upgrading from the first release's schema and data.

use portcullis_domain::password::{Password, PasswordHasher};
use portcullis_domain::session::{RefreshToken, SecretGenerator};
use portcullis_infra::crypto::{Argon2Hasher, HashPoolConfig, RandomSecrets};
use portcullis_migration::{Migrator, MigratorTrait};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Statement, Value as DbValue};

use crate::helpers::*;

/// The migrations that shipped in the first release (users, sessions,
/// refresh tokens, tasks).
const FIRST_RELEASE_MIGRATIONS: u32 = 4;

#[tokio::test]
async fn users_and_sessions_of_the_first_release_work_after_upgrading() {
    let dir = tempfile::tempdir().unwrap();
    let url = match fresh_database_url().await {
        Some(url) => url,
        None => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("portcullis.db").display()
        ),
    };
    let db = sea_orm::Database::connect(&url).await.unwrap();
    Migrator::up(&db, Some(FIRST_RELEASE_MIGRATIONS))
        .await
        .unwrap();

    // First-release data, written as that release wrote it.
    let hasher = Argon2Hasher::new(HashPoolConfig {
        workers: 1,
        queue: 4,
        ..HashPoolConfig::default()
    })
    .unwrap();
    let hash = hasher
        .hash(&Password::new(PASSWORD.to_owned()))
        .await
        .unwrap();
    let refresh = "firstReleaseRefreshTokenAAAAAAAAAAAAAAAAAAA";
    let digest = RandomSecrets.digest(&RefreshToken::parse(refresh).unwrap());
    let user_id = uuid::Uuid::now_v7();
    let session_id = uuid::Uuid::now_v7();
    let now = time::OffsetDateTime::now_utc();
    let ms = |t: time::OffsetDateTime| (t.unix_timestamp_nanos() / 1_000_000) as i64;
    let backend = db.get_database_backend();
    let insert =
        |sql: &str, values: Vec<DbValue>| Statement::from_sql_and_values(backend, sql, values);
    let placeholders = |n: usize| {
        (1..=n)
            .map(|i| {
                if backend == sea_orm::DbBackend::Postgres {
                    format!("${i}")
                } else {
                    "?".to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    db.execute_raw(insert(
        &format!(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ({})",
            placeholders(5)
        ),
        vec![
            user_id.into(),
            "veteran@example.com".into(),
            hash.as_str().into(),
            ms(now).into(),
            ms(now).into(),
        ],
    ))
    .await
    .unwrap();
    db.execute_raw(insert(
        &format!(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at) VALUES ({})",
            placeholders(6)
        ),
        vec![
            session_id.into(),
            user_id.into(),
            ms(now).into(),
            ms(now).into(),
            ms(now + time::Duration::days(7)).into(),
            ms(now + time::Duration::days(30)).into(),
        ],
    ))
    .await
    .unwrap();
    db.execute_raw(insert(
        &format!(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ({})",
            placeholders(3)
        ),
        vec![
            digest.as_bytes().to_vec().into(),
            session_id.into(),
            ms(now).into(),
        ],
    ))
    .await
    .unwrap();
    drop(db);

    // This release migrates forward on start.
    let app = spawn_with(Options {
        data_dir: Some(dir.path().to_path_buf()),
        database_url: Some(url),
        ..Options::default()
    })
    .await;
    let login = app.log_in("veteran@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
    let refreshed = app.refresh(refresh).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let tokens = Tokens::from(refreshed).await;
    assert_eq!(tokens.session_id(), session_id.to_string());
    assert_eq!(app.me(&tokens.access).await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn an_account_stored_with_a_decomposed_email_logs_in_by_either_form_after_upgrading() {
    let dir = tempfile::tempdir().unwrap();
    let url = match fresh_database_url().await {
        Some(url) => url,
        None => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("portcullis.db").display()
        ),
    };
    let db = sea_orm::Database::connect(&url).await.unwrap();
    Migrator::up(&db, Some(FIRST_RELEASE_MIGRATIONS))
        .await
        .unwrap();
    let hash = Argon2Hasher::new(HashPoolConfig {
        workers: 1,
        queue: 4,
        ..HashPoolConfig::default()
    })
    .unwrap()
    .hash(&Password::new(PASSWORD.to_owned()))
    .await
    .unwrap();
    let backend = db.get_database_backend();
    let sql = if backend == sea_orm::DbBackend::Postgres {
        "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)"
    } else {
        "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
    };
    let user_id = uuid::Uuid::now_v7();
    // The first release lowercased only: "josé" typed as e + U+0301.
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        vec![
            user_id.into(),
            "jose\u{301}@example.com".into(),
            hash.as_str().into(),
            0i64.into(),
            0i64.into(),
        ],
    ))
    .await
    .unwrap();
    drop(db);

    let app = spawn_with(Options {
        data_dir: Some(dir.path().to_path_buf()),
        database_url: Some(url),
        ..Options::default()
    })
    .await;
    for typed in ["jos\u{e9}@example.com", "jose\u{301}@example.com"] {
        let login = app.log_in(typed, PASSWORD).await;
        assert_eq!(login.status(), StatusCode::OK, "{typed:?}");
        let tokens = Tokens::from(login).await;
        assert_eq!(tokens.body["user"]["id"], user_id.to_string());
        assert_eq!(tokens.body["user"]["email"], "jos\u{e9}@example.com");
    }
    let taken = app.sign_up("jos\u{e9}@example.com", PASSWORD).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    app.stop().await;
}
