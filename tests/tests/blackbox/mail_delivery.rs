//! Delivery of the outbox: `.eml` files by default, SMTP when configured,
//! and nothing lost while the SMTP server is down, even across a restart.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database, Statement};

use crate::helpers::mail::{SmtpServer, read_all};
use crate::helpers::{Options, spawn_app, spawn_with};

/// The outbox rows of a test server's database: (status, payload present).
async fn outbox_rows(url: &str) -> Vec<(String, bool)> {
    let db = Database::connect(url).await.unwrap();
    let backend = db.get_database_backend();
    db.query_all_raw(Statement::from_string(
        backend,
        "SELECT status, payload IS NOT NULL AS has_payload FROM email_outbox ORDER BY created_at",
    ))
    .await
    .unwrap()
    .into_iter()
    .map(|row| {
        let status: String = row.try_get("", "status").unwrap();
        let has: bool = row
            .try_get::<bool>("", "has_payload")
            .or_else(|_| row.try_get::<i32>("", "has_payload").map(|n| n != 0))
            .unwrap();
        (status, has)
    })
    .collect()
}

fn database_url_of(app: &crate::helpers::TestApp) -> String {
    app.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rw",
            app.data_dir.join("portcullis.db").display()
        )
    })
}

#[tokio::test]
async fn a_delivered_message_keeps_no_token() {
    let app = spawn_app().await;
    let (email, _) = app.new_user().await;
    app.wait_for_mail(&email, "Confirm your email address")
        .await;
    // The row is settled right after the delivery.
    let url = database_url_of(&app);
    let mut rows = outbox_rows(&url).await;
    for _ in 0..50 {
        if rows.iter().all(|(status, _)| status == "sent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = outbox_rows(&url).await;
    }
    assert_eq!(rows, vec![("sent".to_owned(), false)]);
    app.stop().await;
}

#[tokio::test]
async fn without_smtp_each_message_is_an_eml_file_in_the_data_directory() {
    let app = spawn_with(Options {
        eml_files: true,
        ..Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;
    app.wait_for_mail(&email, "Confirm your email address")
        .await;
    let files: Vec<_> = std::fs::read_dir(app.data_dir.join("mail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().unwrap(), "eml");
    app.stop().await;
}

#[tokio::test]
#[ignore = "needs aiosmtpd (pip install aiosmtpd==1.4.6); CI runs it with --include-ignored"]
async fn a_message_queued_while_smtp_is_down_arrives_after_a_restart() {
    let maildir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let app = spawn_with(Options {
        smtp_url: Some(smtp_url.clone()),
        ..Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;
    assert_eq!(
        app.forgot_password(&email).await.status(),
        StatusCode::ACCEPTED
    );
    // Nothing listens: the attempts fail and are retried later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let url = database_url_of(&app);
    let rows = outbox_rows(&url).await;
    assert!(
        rows.iter().all(|(status, has)| status == "pending" && *has),
        "{rows:?}"
    );

    let (dir, data_dir, database_url) = app.stop_keeping_data().await;
    let server = SmtpServer::start_on(port, maildir.path());
    let app = spawn_with(Options {
        smtp_url: Some(smtp_url),
        data_dir: Some(data_dir),
        database_url,
        ..Options::default()
    })
    .await;
    // The first retry is due 5 s after the failed attempt.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mails = read_all(&server.maildir);
        let subjects: Vec<_> = mails
            .iter()
            .filter(|m| m.to == email)
            .map(|m| m.subject.clone())
            .collect();
        if subjects.iter().any(|s| s.contains("Reset your password"))
            && subjects
                .iter()
                .any(|s| s.contains("Confirm your email address"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queued messages never arrived: {subjects:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
    drop(dir);
}
